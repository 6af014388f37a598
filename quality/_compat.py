"""Great Expectations internals Headwater relies on, in one place; ``tests/test_compat.py`` and
``tests/quality/test_gx_runner.py`` fail when GX moves them (GX is pinned exactly: ``GX_VERSION``).

GX 1.x does not support DuckDB through SQLAlchemy: with duckdb_engine every expectation fails with "list index out
of range", because GX hands each metric its own pooled connection. GX already keeps one persisted connection for
SQLite and SQL Server (its private ``_PERSISTED_CONNECTION_DIALECTS``); :func:`enable_duckdb` adds DuckDB to that
tuple. Closing that connection again (DuckDB allows one writer; dbt needs the file next) means reaching into the
data source's ``_execution_engine._connection``.

Importing GX imports every expectation it ships, and two of them import SciPy's statistics and Altair at module level
for what they compute or draw when they run (the KL-divergence and Kolmogorov-Smirnov expectations):
:func:`import_gx` defers those two modules until something uses them, which takes a third of GX's import time and
~75 MiB off every run with suites. That relies on GX touching neither while it imports (its internals, checked by
``tests/test_compat.py``).

GX converts every DECIMAL metric (DuckDB's sums and averages) with ``util.convert_decimal_to_float``, which walks
the whole call stack with ``inspect.stack()`` (reading the source of every frame) to find out whether its
rule-based profiler called it, only to decide whether to log a warning: 3% of a demo run's CPU. Headwater never runs
that profiler; :func:`import_gx` replaces the function with the same conversion and warning without the walk.
"""

from __future__ import annotations

import decimal
import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

GX_VERSION = "1.24.1"
"""The exact GX version the DuckDB patch was verified on (pyproject pins the same)."""


class GxVersionError(RuntimeError):
    """The installed GX is not the version the DuckDB patch was verified on."""


class _Dialect(str):
    """A dialect name GX's persisted-connection check accepts: compares as a string, has ``.value``."""

    @property
    def value(self) -> str:
        return str(self)


DEFERRED = ("scipy.stats", "altair")
"""Modules GX imports at module level only to use inside functions that most suites never call."""


class _Deferred(types.ModuleType):
    """Stands in for a module in ``sys.modules`` until one of its attributes is read, then imports it and becomes it
    (``from scipy import stats`` binds this object; ``stats.entropy`` imports SciPy's statistics there and then)."""

    def __init__(self, name: str, spec: Any) -> None:
        super().__init__(name)
        self.__spec__ = spec
        self.__file__ = spec.origin  # what ``inspect.getmodule`` reads of every module (GX walks the stack)
        self.__dict__["_headwater_lock"] = threading.Lock()

    def __getattr__(self, attr: str) -> Any:  # only for attributes not (yet) in this module's dict, __path__ too
        with self.__dict__["_headwater_lock"]:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
                try:
                    real = importlib.import_module(self.__name__)
                except BaseException:
                    sys.modules[self.__name__] = self
                    raise
                self.__dict__.update({k: v for k, v in vars(real).items() if k != "__spec__"})
        if attr in self.__dict__:
            return self.__dict__[attr]
        return getattr(sys.modules[self.__name__], attr)


def defer_imports(names: tuple[str, ...] = DEFERRED) -> None:
    """Put a stand-in for each of ``names`` not imported yet (and installed) in ``sys.modules`` (idempotent)."""
    for name in names:
        if name in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            sys.modules[name] = _Deferred(name, spec)


def import_gx() -> Any:
    """``great_expectations``, imported with :data:`DEFERRED` deferred and its decimal conversion without the stack
    walk (idempotent)."""
    defer_imports()
    import great_expectations as gx
    from great_expectations import util

    if util.convert_decimal_to_float is not _convert_decimal_to_float:
        util.convert_decimal_to_float = _convert_decimal_to_float  # util's own callers look the name up when called
    return gx


def _convert_decimal_to_float(d: Any) -> float:
    """GX's ``util.convert_decimal_to_float`` without the ``inspect.stack()`` walk (which only decided whether its
    rule-based profiler was the caller, to leave out this warning)."""
    from great_expectations import util

    if isinstance(d, decimal.Decimal) and util.requires_lossy_conversion(d=d):
        util.logger.warning(f"Using lossy conversion for decimal {d} to float object to support serialization.")
    return float(d)


def enable_duckdb() -> None:
    """Let GX's SQLAlchemy engine run on DuckDB by keeping one persisted connection (idempotent).

    Raises:
        GxVersionError: GX is not ``GX_VERSION``; re-verify the patch before changing the pin.
    """
    gx = import_gx()
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    if gx.__version__ != GX_VERSION:
        raise GxVersionError(
            f"great_expectations {gx.__version__} is installed, but Headwater's DuckDB support was verified on "
            f"{GX_VERSION}; pin great-expectations=={GX_VERSION} or re-run tests/quality/test_gx_runner.py "
            "and update quality/_compat.GX_VERSION"
        )
    dialects = engine._PERSISTED_CONNECTION_DIALECTS
    if not any(d == "duckdb" for d in dialects):
        engine._PERSISTED_CONNECTION_DIALECTS = (*dialects, _Dialect("duckdb"))  # type: ignore[assignment]


def close_persisted_connection(datasource: Any) -> None:
    """Close a GX SQL data source's persisted connection and dispose of its engines."""
    execution_engine = getattr(datasource, "_execution_engine", None)
    if execution_engine is not None:
        if execution_engine._connection is not None:
            execution_engine._connection.close()
            execution_engine._connection = None
        execution_engine.engine.dispose()
    if getattr(datasource, "_engine", None) is not None:
        datasource._engine.dispose()
