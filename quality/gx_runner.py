"""Running Great Expectations suites in the warehouse, on PostgreSQL, Snowflake and DuckDB alike.

GX's SQL data sources push every expectation down as aggregate queries, so a suite reads no rows into
Python. GX 1.x does not support DuckDB through SQLAlchemy: with duckdb_engine every expectation fails
with "list index out of range", because GX hands each metric its own pooled connection. GX already keeps
one persisted connection for SQLite and SQL Server (its private ``_PERSISTED_CONNECTION_DIALECTS``);
:func:`enable_duckdb` adds DuckDB to that tuple, after which the same suites run in DuckDB, pushed down
like anywhere else. That private name (and closing the persisted connection) lives in ``quality/_compat.py``;
GX is pinned exactly (``GX_VERSION``) and ``tests/test_compat.py`` fails when either the pin or a name changes.

Importing ``great_expectations`` costs seconds (20-45 s on a cold machine): this module imports it only
inside functions, and only runs that have suites to run call them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from assets import Severity
from assets.checks import CheckOutcome
from quality._compat import GX_VERSION, GxVersionError, close_persisted_connection, enable_duckdb, import_gx
from quality.suites import Suite

__all__ = ["GX_VERSION", "GxVersionError", "SuiteRunner", "Warehouse", "enable_duckdb"]


@dataclass(frozen=True)
class Warehouse:
    """Where suites run: a SQLAlchemy URL (secret: held in an environment variable, never in GX's files)."""

    target: str
    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)
    """Driver arguments beside the URL (an emulator's address); no secret: GX stores them in its project file."""

    @property
    def dialect(self) -> str:
        return self.url.split(":", 1)[0].split("+", 1)[0]

    @property
    def env_var(self) -> str:
        return "HEADWATER_GX_URL_" + re.sub(r"[^A-Z0-9]", "_", self.target.upper())


class SuiteRunner:
    """Runs suites against one warehouse through one GX file context (results and Data Docs kept there).

    GX keeps its project in ``<root_dir>/gx``; Data Docs land in its ``uncommitted/data_docs/local_site``.
    """

    def __init__(self, root_dir: Path, warehouse: Warehouse) -> None:
        _quiet_gx()
        gx = import_gx()

        if warehouse.dialect == "duckdb":
            enable_duckdb()
        self.warehouse = warehouse
        self.root_dir = Path(root_dir)
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.tidied = tidy_store(self.root_dir / "gx")
        self.gx = gx
        self.context = self._open_context()
        self.context.variables.progress_bars = {"globally": False}
        # GX writes data sources into great_expectations.yml: store a ${VAR} reference, never the URL; GX reads that
        # variable from the environment only, so it is set while this runner works (close() removes it).
        self._expose()
        self.datasource = self.context.data_sources.add_or_update_sql(
            name=f"headwater_{warehouse.target}",
            connection_string="${" + warehouse.env_var + "}",
            **({"kwargs": {"connect_args": warehouse.connect_args}} if warehouse.connect_args else {}),
        )

    def _open_context(self) -> Any:
        """GX's file context; a project file a stopped run left cut short is set aside and GX writes a fresh one.

        GX rewrites ``great_expectations.yml`` whole on every data-source update, so a signal there leaves it empty
        or half written and every later run would fail to open the project. Headwater owns that file (its data
        source is added again below, suites and results live in their own files), so nothing is lost.
        """
        config = self.root_dir / "gx" / "great_expectations.yml"
        try:
            return self.gx.get_context(mode="file", project_root_dir=str(self.root_dir))
        except Exception:  # GX raises its own config, YAML and marshmallow errors for a bad project file
            if not config.exists():
                raise
        aside = config.with_name(f"{config.name}.broken")
        config.replace(aside)
        self.tidied.append(f"{config}: unreadable (a run stopped while GX wrote it); set aside as {aside.name}")
        return self.gx.get_context(mode="file", project_root_dir=str(self.root_dir))

    def run(self, suite: Suite, schema: str, table: str) -> list[CheckOutcome]:
        """Validate ``schema.table`` against ``suite``; one outcome per expectation, in the suite's order.

        A suite GX cannot even build (an unknown expectation, bad arguments) yields ``error`` outcomes that
        name the suite file, rather than raising.
        """
        gx = self.gx
        self._expose()  # close() took it out; GX resolves it per connection
        asset_name = f"{schema}.{table}"
        try:
            asset = self.datasource.get_asset(asset_name)
        except LookupError:
            with warnings.catch_warnings():  # schema_name is deprecated, but one data source serves every schema
                warnings.simplefilter("ignore", DeprecationWarning)
                asset = self.datasource.add_table_asset(asset_name, table_name=table, schema_name=schema)
        batch = next((b for b in asset.batch_definitions if b.name == "whole_table"), None)
        batch = batch or asset.add_batch_definition_whole_table("whole_table")
        expectations, outcomes = [], {}
        for check in suite.checks:
            where = f"{check.path}:{check.config.get('line', 1)}"
            if "invalid" in check.config:  # the suite file says what is wrong: no GX needed to say it
                outcomes[check.name] = CheckOutcome(check, "error", None, check.config["invalid"])
                continue
            try:
                expectations.append(_expectation(gx, check.config["type"], check.config["kwargs"], check.name))
            except Exception as exc:  # GX raises pydantic, KeyError and its own errors for bad declarations
                logging.getLogger("headwater").warning("%s: %s", where, check.name, exc_info=exc)
                outcomes[check.name] = CheckOutcome(check, "error", None, f"{where}: {check.name}: {_first_line(exc)}")
        if expectations:  # the valid expectations run even when others of the suite cannot
            gx_suite = self.context.suites.add_or_update(
                gx.ExpectationSuite(name=str(suite.asset_key), expectations=expectations)
            )
            definition = self.context.validation_definitions.add_or_update(
                gx.ValidationDefinition(name=f"{suite.asset_key}@{self.warehouse.target}", data=batch, suite=gx_suite)
            )
            result = definition.run(result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5})
            by_name = {check.name: check for check in suite.checks}
            for item in result.results:
                check = by_name[item.expectation_config.meta["headwater_check"]]
                outcomes[check.name] = _outcome(check, item)
        missing = "Great Expectations returned no result for it"
        return [
            outcomes.get(c.name) or CheckOutcome(c, "error", None, f"{c.path}: {c.name}: {missing}")
            for c in suite.checks
        ]

    def build_docs(self) -> Path | None:
        """Build GX Data Docs from every stored validation result; returns the index page."""
        self._expose()
        self.context.build_data_docs()
        index = data_docs_index(self.root_dir)
        return index if index.exists() else None

    def _expose(self) -> None:
        """The warehouse URL where GX's ``${VAR}`` reference finds it, while this runner works."""
        os.environ[self.warehouse.env_var] = self.warehouse.url

    def close(self) -> None:
        """Close GX's persisted warehouse connections (DuckDB allows one writer; dbt needs it next), and take the
        warehouse URL out of the environment again (it is there only while the runner works: run() sets it again)."""
        for datasource in self.context.data_sources.all().values():
            close_persisted_connection(datasource)
        os.environ.pop(self.warehouse.env_var, None)


KEEP_VALIDATIONS = 20
"""Validation results kept per suite; GX keeps every one otherwise (~0.4 MB per demo run, without bound)."""


def tidy_store(gx_dir: Path, keep: int = KEEP_VALIDATIONS) -> list[str]:
    """Make GX's file store safe to open: remove JSON files a run interrupted mid-write left unreadable (suites and
    validation definitions are written again by the next run; one run's validation result is what is lost), and keep
    only the newest ``keep`` validation results per suite. Returns what it removed, for the run's report."""
    removed: list[str] = []
    if not gx_dir.is_dir():
        return removed
    for folder in ("expectations", "validation_definitions", "checkpoints", "uncommitted/validations"):
        for path in sorted((gx_dir / folder).rglob("*.json")):
            try:
                json.loads(path.read_text())
            except (ValueError, OSError):
                path.unlink(missing_ok=True)
                removed.append(f"{path}: unreadable (a run stopped while GX wrote it)")
    validations = gx_dir / "uncommitted" / "validations"
    if validations.is_dir():
        by_suite: dict[Path, list[Path]] = {}
        for path in validations.rglob("*.json"):
            by_suite.setdefault(path.relative_to(validations).parents[-3], []).append(path)
        for paths in by_suite.values():
            for path in sorted(paths, key=lambda p: p.stat().st_mtime, reverse=True)[keep:]:
                path.unlink(missing_ok=True)
        for subfolder in sorted((p for p in validations.rglob("*") if p.is_dir()), reverse=True):
            if not any(subfolder.iterdir()):
                subfolder.rmdir()
    return removed


def data_docs_index(root_dir: Path) -> Path:
    """Where :meth:`SuiteRunner.build_docs` writes the Data Docs index page for ``root_dir``."""
    return Path(root_dir) / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def _expectation(gx: Any, expectation: str, kwargs: dict[str, Any], name: str) -> Any:
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        impl = get_expectation_impl(expectation)
    except Exception:
        raise ValueError(f"unknown expectation {expectation!r} in Great Expectations {gx.__version__}") from None
    try:
        return impl(**kwargs, meta={"headwater_check": name})
    except Exception as exc:  # pydantic's error lists each field on lines of its own: say them on one
        problem = _arguments_problem(exc, impl, kwargs)
        if problem is None:
            raise
        raise ValueError(f"{expectation}: {problem}") from None


def _arguments_problem(exc: Any, impl: Any, kwargs: dict[str, Any]) -> str | None:
    """A GX declaration's argument errors on one line: each unknown argument with the nearest known one, each
    missing argument, each bad value (None when ``exc`` is no validation error)."""
    import difflib

    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return None
    fields = getattr(impl, "__fields__", None) or getattr(impl, "model_fields", None) or {}
    known = sorted(n for n in fields if n not in ("meta", "id", "notes", "description", "rendered_content"))
    missing = [str(e["loc"][0]) for e in errors() if e.get("loc") and "missing" in str(e.get("type", ""))]
    parts = []
    for error in errors():
        where = str(error["loc"][0]) if error.get("loc") else "?"
        kind = str(error.get("type", ""))
        if "extra" in kind:
            close = difflib.get_close_matches(where, [*missing, *known], n=1, cutoff=0.6)
            parts.append(f"unknown argument {where!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        elif "missing" in kind:
            parts.append(f"missing argument {where!r}")
        else:
            parts.append(f"{where}: {error.get('msg', kind)}")
    return "; ".join(parts) + (f"; its arguments: {', '.join(known)}" if known else "") if parts else None


def _outcome(check: Any, item: Any) -> CheckOutcome:
    info = item.exception_info or {}
    raised = [v for v in ([info] if "raised_exception" in info else info.values()) if isinstance(v, dict)]
    error = next((v.get("exception_message") for v in raised if v.get("raised_exception")), None)
    if error:
        return CheckOutcome(check, "error", None, f"{check.path}: {check.name}: {_first_line(error)}")
    if item.success:
        return CheckOutcome(check, "pass", 0, _observed(item.result))
    result = item.result or {}
    failures = result.get("unexpected_count")
    status = "warn" if check.severity is Severity.WARN else "fail"
    return CheckOutcome(check, status, int(failures) if failures is not None else 1, _observed(result))


def _observed(result: dict[str, Any] | None) -> str:
    result = result or {}
    parts = []
    if result.get("unexpected_count") is not None:
        parts.append(f"{result['unexpected_count']} of {result.get('element_count')} rows unexpected")
        sample = result.get("partial_unexpected_list") or []
        if sample:
            parts.append("e.g. " + ", ".join(_shown(v) for v in sample[:5]))
    elif "observed_value" in result:
        parts.append(f"observed {result['observed_value']!r}")
    return "; ".join(parts)


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)  # quotes show stray whitespace (' Placed ')
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def _first_line(exc: Any) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


def _quiet_gx() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # it logs a bad project file at ERROR before raising; SuiteRunner handles that case and says so itself
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.CRITICAL)
