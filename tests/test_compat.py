"""Guards for the private APIs of other libraries, one ``_compat`` module each: every test here fails when the
library moves what Headwater relies on (a name, a signature, a behaviour), before a run does."""

from __future__ import annotations

import inspect

import duckdb
import pytest
import sqlglot

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`


def test_prefect_still_emits_task_run_state_events_with_the_mirrors_arguments() -> None:
    from orchestration.prefect import _compat

    parameters = inspect.signature(_compat.emit_task_run_state_change_event).parameters
    assert set(_compat.EMIT_PARAMETERS) <= set(parameters), sorted(parameters)
    assert _compat.emit_task_run_state_change_event.__module__ == "prefect.utilities.engine"


def test_dbt_duckdb_still_keeps_its_database_on_the_connection_manager() -> None:
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    from orchestration.dbt._compat import close_duckdb_environment

    assert hasattr(DuckDBConnectionManager, "_ENV"), "dbt-duckdb no longer keeps _ENV: release_duckdb must change"
    with DuckDBConnectionManager._LOCK:  # a lock, as the compat module uses it
        pass
    close_duckdb_environment()
    assert DuckDBConnectionManager._ENV is None


def test_gx_is_pinned_and_its_persisted_connection_names_exist() -> None:
    import great_expectations as gx
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    from quality import _compat

    assert gx.__version__ == _compat.GX_VERSION
    _compat.enable_duckdb()
    assert "duckdb" in engine._PERSISTED_CONNECTION_DIALECTS
    assert "self._connection" in inspect.getsource(engine.SqlAlchemyExecutionEngine)


def test_gx_still_walks_the_stack_to_convert_a_decimal_and_headwater_converts_it_without() -> None:
    import decimal

    from quality import _compat

    _compat.import_gx()
    from great_expectations import util

    assert util.convert_decimal_to_float is _compat._convert_decimal_to_float
    original = inspect.getsource(util.requires_lossy_conversion)
    assert "def requires_lossy_conversion(d: decimal.Decimal) -> bool" in original
    assert util.convert_to_json_serializable(decimal.Decimal("1.25")) == 1.25
    assert util.convert_to_json_serializable(decimal.Decimal("0.1000000000000000055511151231257827")) == 0.1
    module_source = inspect.getsource(util)  # what the replacement stands in for: the walk, to spot the profiler
    assert "def convert_decimal_to_float(d: SupportsFloat) -> float:" in module_source
    assert '== "parameter_builder.py"' in module_source and "stack()," in module_source


GX_DEFERRED = """
import sys
from quality._compat import DEFERRED, import_gx

import_gx()
print(sorted(name for name in DEFERRED if type(sys.modules[name]).__name__ != "_Deferred"))
from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl

print(round(kl.stats.entropy([0.5, 0.5], [0.9, 0.1]), 4), type(sys.modules["scipy.stats"]).__name__)
import scipy.stats.mstats
"""


def test_gx_still_imports_without_touching_the_modules_it_defers() -> None:
    """In a fresh interpreter: GX's import leaves ``DEFERRED`` as stand-ins (a GX that reads one at import loads it
    there, and this fails), and the KL-divergence expectation's ``stats`` works once used."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", GX_DEFERRED], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ["[]", "0.5108 module"], proc.stdout


def test_sqlmesh_still_categorises_an_added_column_as_non_breaking_and_a_new_filter_as_breaking() -> None:
    from orchestration.analysis._compat import only_projections_added

    def query(sql: str):
        return sqlglot.parse_one(sql, dialect="duckdb")

    old = query("select id, amount from raw.orders")
    assert only_projections_added("marts.orders", query("select id, amount, status from raw.orders"), old, "duckdb")
    assert not only_projections_added(
        "marts.orders", query("select id, amount from raw.orders where id > 1"), old, "duckdb"
    )


def test_sqlmesh_still_diffs_rows_of_two_tables_on_a_duckdb_connection() -> None:
    from orchestration.analysis._compat import row_diff

    con = duckdb.connect()
    try:
        con.execute("create table main.source as select * from (values (1, 'a'), (2, 'b'), (3, 'c')) t(id, v)")
        con.execute("create table main.target as select * from (values (1, 'a'), (2, 'x'), (4, 'd')) t(id, v)")
        diff = row_diff(con, "main.source", "main.target", on=["id"], skip_columns=[], limit=5)
        assert (diff.source_count, diff.target_count, diff.join_count) == (3, 3, 2)
        assert (diff.s_only_count, diff.t_only_count, diff.partial_match_count) == (1, 1, 1)
    finally:
        con.close()


def test_multiprocessing_still_has_the_exit_hook_the_fast_exit_runs() -> None:
    import multiprocessing.util

    assert callable(getattr(multiprocessing.util, "_exit_function", None))


def test_python_still_runs_the_exit_hooks_the_test_zygote_runs_in_each_fork() -> None:
    """tests/zygote.py ends each forked CLI run with the interpreter's exit hooks, then ``os._exit``."""
    import atexit

    assert callable(getattr(atexit, "_run_exitfuncs", None))


def test_sqlalchemy_still_releases_pooled_connections_through_the_named_functions() -> None:
    import sqlalchemy.pool.base as pool_base

    from orchestration.warehouse._compat import SQLALCHEMY_RELEASE_FUNCTIONS

    assert SQLALCHEMY_RELEASE_FUNCTIONS == ("_close_connection", "_finalize_fairy")
    assert callable(getattr(pool_base.Pool, "_close_connection", None)), "Pool._close_connection moved"
    assert callable(getattr(pool_base, "_finalize_fairy", None)), "sqlalchemy.pool.base._finalize_fairy moved"


def test_sqlalchemy_results_still_expose_their_dbapi_cursor() -> None:
    import sqlalchemy as sa

    from orchestration.warehouse._compat import dbapi_rows

    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        result = conn.exec_driver_sql("select 1, 'a' union all select 2, 'b'")
        assert dbapi_rows(result) == [(1, "a"), (2, "b")], "CursorResult.cursor moved"
    engine.dispose()


def test_dbt_still_renders_a_var_in_its_base_context_with_the_invocation_environment() -> None:
    """``orchestration.dbt._compat.render_with_dbt``: dbt's ``get_rendered``, ``generate_base_context`` and the
    invocation context ``env_var`` reads (dbt_common.context); the environment given wins, and is put back."""
    from dbt_common.context import get_invocation_context, set_invocation_context

    from orchestration.dbt._compat import render_with_dbt

    set_invocation_context({"X": "before"})
    text = "{{ env_var('X', 'd') }}/{{ var('y') }}/{{ target.name }}"
    assert render_with_dbt(text, {"y": 2}, {"X": "given"}, {"name": "dev"}) == "given/2/dev"
    assert get_invocation_context().env["X"] == "before", "the invocation's environment is put back"


def test_prefects_event_and_log_workers_still_drain_with_a_timeout() -> None:
    """``orchestration.prefect._compat.drain_event_and_log_queues``: the CLI's last step before it exits."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    from orchestration.prefect._compat import drain_event_and_log_queues

    for worker in (EventsWorker, APILogWorker):
        assert "timeout" in inspect.signature(worker.drain_all).parameters, worker
    drain_event_and_log_queues(0.1)  # nothing queued: returns at once


def test_dlt_still_keeps_the_column_of_a_failed_arrow_conversion() -> None:
    """``ingestion._compat.conversion_field``: a table whose reader fails names the column from dlt's exception."""
    from dlt.common.libs.pyarrow import PyToArrowConversionException

    from ingestion._compat import conversion_field

    exc = PyToArrowConversionException("bigint", None, field_name="quantity", table_name="order_items")
    assert conversion_field(exc) == "quantity" and exc.data_type == "bigint"
    assert conversion_field(ValueError("x")) == ""
