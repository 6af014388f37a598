"""Great Expectations suites, really run, on DuckDB and on PostgreSQL: same suite, same verdicts.

Nothing about GX is mocked. The DuckDB path depends on a patch of GX's private
``_PERSISTED_CONNECTION_DIALECTS``; the first tests fail when GX changes under it.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from quality.gx_runner import GX_VERSION, SuiteRunner, Warehouse
from quality.suites import load_suites

SUITE = """
severity: error
expectations:
  - expect_column_values_to_not_be_null: {column: id}
  - expect_column_values_to_be_unique: {column: id}
  - expect_column_values_to_be_between: {column: amount, min_value: 0}
    name: amount_not_negative
  - expect_column_values_to_be_in_set: {column: status, value_set: [placed, shipped]}
    name: status_known
    severity: warn
  - expect_column_values_to_match_like_pattern: {column: email, like_pattern: '%@%'}
    name: email_like
  - expect_table_row_count_to_be_between: {min_value: 5, max_value: 5}
  - expect_column_max_to_be_between: {column: amount, max_value: 100}
    name: amount_max
  - expect_column_values_to_not_be_null: {column: missing_column}
    name: broken_declaration
  - expect_column_values_to_be_unique: {colum: id}
  - expect_column_values_to_be_in_set: {column: status, value_set: [placed]}
    colour: red
"""
ROWS = [
    (1, 10.0, "placed", "a@example.com"),
    (2, -3.5, "shipped", "b@example.com"),
    (3, 20.0, " Placed ", "c@example.com"),
    (4, 30.0, "placed", "not-an-email"),
    (5, 40.0, "shipped", None),
]
EXPECTED = {
    "expect_column_values_to_not_be_null__id": ("pass", 0),
    "expect_column_values_to_be_unique__id": ("pass", 0),
    "amount_not_negative": ("fail", 1),
    "status_known": ("warn", 1),
    "email_like": ("fail", 1),
    "expect_table_row_count_to_be_between": ("pass", 0),
    "amount_max": ("pass", 0),
    "broken_declaration": ("error", None),
    "expect_column_values_to_be_unique": ("error", None),  # misspelled argument: one error, the rest still run
    "expect_column_values_to_be_in_set__status": ("error", None),  # an unknown option
}


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("suites")
    (folder / "raw.payments.yml").write_text(SUITE)
    return load_suites(folder)[0]


def _fill(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("create schema if not exists raw"))
        conn.execute(
            sa.text("create table raw.payments (id integer, amount double precision, status text, email text)")
        )
        for row in ROWS:
            conn.execute(
                sa.text("insert into raw.payments values (:a, :b, :c, :d)"), dict(zip("abcd", row, strict=True))
            )
    engine.dispose()


def _verdicts(runner: SuiteRunner, suite) -> dict[str, tuple[str, int | None]]:
    try:
        outcomes = runner.run(suite, "raw", "payments")
    finally:
        runner.close()
    names = [o.check.name for o in outcomes]
    assert len(names) == len(set(names)) == len(suite.checks), f"each check reported once: {names}"
    misspelled = next(o for o in outcomes if o.check.name == "expect_column_values_to_be_unique")
    assert misspelled.message.startswith(f"{suite.path}:18: expect_column_values_to_be_unique: "), misspelled.message
    # issue 29 finding 12: the bad key, the nearest known one and the missing one are named, on one line
    assert "missing argument 'column'; unknown argument 'colum' (did you mean 'column'?)" in misspelled.message
    unknown = next(o for o in outcomes if o.check.name == "expect_column_values_to_be_in_set__status")
    assert unknown.message == f"{suite.path}:19: unknown option(s) colour; allowed: description, name, severity"
    return {o.check.name: (o.status, o.failures) for o in outcomes}


def test_gx_is_the_pinned_version_and_the_patched_name_exists() -> None:
    import great_expectations as gx
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    assert gx.__version__ == GX_VERSION, "re-verify quality/gx_runner.enable_duckdb before moving the pin"
    assert isinstance(engine._PERSISTED_CONNECTION_DIALECTS, tuple)


def test_gx_still_needs_the_duckdb_patch(tmp_path: Path, suite) -> None:
    """Unpatched GX fails every expectation on DuckDB; when this test fails, GX supports DuckDB: drop the patch."""
    import subprocess
    import sys

    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("create schema raw; create table raw.t as select 1 as id")
    script = f"""
import great_expectations as gx
ctx = gx.get_context(mode="ephemeral")
asset = ctx.data_sources.add_sql("w", connection_string="duckdb:///{db}").add_table_asset("t", table_name="t", schema_name="raw")
suite = ctx.suites.add(gx.ExpectationSuite("s", expectations=[gx.expectations.ExpectColumnValuesToNotBeNull(column="id")]))
vd = ctx.validation_definitions.add(gx.ValidationDefinition(name="v", data=asset.add_batch_definition_whole_table("b"), suite=suite))
print("SUCCESS" if vd.run().success else "FAILED")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip().endswith("FAILED"), proc.stdout + proc.stderr[-2000:]


def test_suite_verdicts_on_duckdb(tmp_path: Path, suite) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    _fill(url)
    verdicts = _verdicts(SuiteRunner(tmp_path, Warehouse("dev", url)), suite)
    # GX picks its LIKE/regex SQL by dialect module and knows no DuckDB one: a clear error, never a pass
    assert verdicts == {**EXPECTED, "email_like": ("error", None)}
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:  # the runner let go of the file
        assert con.execute("select count(*) from raw.payments").fetchone() == (5,)


@pytest.mark.postgres
def test_suite_verdicts_on_postgres(tmp_path: Path, suite, pg_database: str) -> None:
    _fill(pg_database)
    verdicts = _verdicts(SuiteRunner(tmp_path, Warehouse("postgres", pg_database)), suite)
    assert verdicts == EXPECTED


def test_error_outcomes_name_the_suite_file(tmp_path: Path, suite) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    _fill(url)
    runner = SuiteRunner(tmp_path, Warehouse("dev", url))
    try:
        broken = next(o for o in runner.run(suite, "raw", "payments") if o.check.name == "broken_declaration")
    finally:
        runner.close()
    assert str(suite.path) in broken.message and "missing_column" in broken.message


@pytest.mark.postgres
def test_connection_urls_stay_out_of_gx_files(tmp_path: Path, pg_database: str) -> None:
    # trust auth ignores the password, so a planted one connects and must appear nowhere GX writes
    url = pg_database.replace("postgresql+psycopg2://postgres@", "postgresql+psycopg2://postgres:hunter2@")
    runner = SuiteRunner(tmp_path, Warehouse("secretive", url))
    runner.close()
    written = "".join(p.read_text(errors="ignore") for p in (tmp_path / "gx").rglob("*") if p.is_file())
    assert "${HEADWATER_GX_URL_SECRETIVE}" in written and "hunter2" not in written


def test_unknown_expectation_is_an_error_outcome(tmp_path: Path) -> None:
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "raw.payments.yml").write_text("expectations:\n  - expect_column_to_be_wonderful: {column: id}\n")
    bad = load_suites(folder)[0]
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    _fill(url)
    runner = SuiteRunner(tmp_path, Warehouse("dev", url))
    try:
        (outcome,) = runner.run(bad, "raw", "payments")
    finally:
        runner.close()
    assert outcome.status == "error" and "expect_column_to_be_wonderful" in outcome.message


def test_the_gx_store_drops_what_an_interrupted_run_left_unreadable_and_keeps_the_newest_results(
    tmp_path: Path,
) -> None:
    import json
    import os

    from quality.gx_runner import tidy_store

    gx_dir = tmp_path / "gx"
    suite = gx_dir / "expectations" / "raw" / "payments.json"
    suite.parent.mkdir(parents=True)
    suite.write_text('{"name": "raw.payme')  # a run stopped while GX wrote it
    kept = gx_dir / "expectations" / "raw" / "orders.json"
    kept.write_text(json.dumps({"name": "raw.orders"}))
    for i in range(7):
        result = gx_dir / "uncommitted" / "validations" / "raw" / "payments" / "__none__" / f"2026{i:02d}" / "r.json"
        result.parent.mkdir(parents=True)
        result.write_text("{}")
        os.utime(result, (1_000_000 + i, 1_000_000 + i))
    removed = tidy_store(gx_dir, keep=3)
    assert removed == [f"{suite}: unreadable (a run stopped while GX wrote it)"]
    assert not suite.exists() and kept.exists()
    left = sorted(p.parent.name for p in (gx_dir / "uncommitted" / "validations").rglob("*.json"))
    assert left == ["202604", "202605", "202606"], "the newest three results, their empty folders gone"
    assert len(list((gx_dir / "uncommitted" / "validations" / "raw" / "payments" / "__none__").iterdir())) == 3


@pytest.mark.parametrize("cut", ["", "config_version: 4.0\nstores:\n  expectations_store:\n    class_na"])
def test_a_project_file_cut_short_by_a_stopped_run_is_set_aside_and_the_next_run_opens(
    tmp_path: Path, suite, cut: str
) -> None:
    # GX rewrites great_expectations.yml on every data-source update; a signal there left it empty in CI and
    # every later run failed with "Error while processing DataContextConfig: _schema"
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    _fill(url)
    SuiteRunner(tmp_path, Warehouse("dev", url)).close()
    config = tmp_path / "gx" / "great_expectations.yml"
    assert "config_version" in config.read_text()
    config.write_text(cut)
    runner = SuiteRunner(tmp_path, Warehouse("dev", url))
    assert runner.tidied == [
        f"{config}: unreadable (a run stopped while GX wrote it); set aside as great_expectations.yml.broken"
    ]
    assert _verdicts(runner, suite) == {**EXPECTED, "email_like": ("error", None)}
    assert (tmp_path / "gx" / "great_expectations.yml.broken").read_text() == cut
