"""Stale-only runs are never wrong: a property test (hypothesis) through the real CLI on real warehouses.

Each example is a random sequence of edits, each followed by a stale-only ``headwater materialize`` (sometimes cut
off by a signal at a random phase and finished by ``headwater retry``). The edits: a model's SQL, a macro, an
ephemeral model, a seed file, a var, an env var, a var whose value is Jinja over an env var, new source rows, a dbt
test's definition (tightened and loosened), an enforced contract's constraint, a GX expectation added or changed, a
test disabled and enabled, rows deleted by hand from a mart, or nothing. A model reads a relation without ``ref()``
or ``source()``. After every step, on a second warehouse, plain ``dbt build --full-refresh`` builds the same project:
every mart must hold exactly, row for row, what it holds there, and every check's last verdict in Headwater's run
log must be what that build gives (dbt tests) or what the expectation's own SQL finds there (GX). On a DuckDB file
and on PostgreSQL. No shrinking: each step is a whole CLI run, and hypothesis prints the failing sequence as
generated.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.conftest import PG_HOST, PG_PORT, PG_USER, base_env, run_cli
from tests.orchestration.test_state_foreign import write_files
from tests.reliability.signals import interrupt_at

FILES = {
    "dbt_project.yml": """
        name: prop
        version: "1.0"
        profile: prop
        model-paths: [models]
        seed-paths: [seeds]
        macro-paths: [macros]
        vars:
          min_amount: 0
          label: "{{ env_var('PROP_VAR_LABEL', 'l0') }}"
    """,
    "profiles.yml": """
        prop:
          target: duck
          outputs:
            duck: {type: duckdb, path: "{{ env_var('PROP_DUCKDB_PATH') }}", threads: 2}
            pg:
              type: postgres
              host: "{{ env_var('PROP_PG_HOST') }}"
              port: "{{ env_var('PROP_PG_PORT') | int }}"
              user: "{{ env_var('PROP_PG_USER') }}"
              password: unused-under-trust-auth
              dbname: "{{ env_var('PROP_PG_DB') }}"
              schema: main
              threads: 2
    """,
    "seeds/regions.csv": "region_id,name\n1,north\n2,south\n",
    "macros/scaled.sql": "{% macro scaled(x) %}({{ x }} * 1){% endmacro %}\n",
    "models/sources.yml": """
        version: 2
        sources:
          - name: ext
            schema: ext
            config:
              loaded_at_field: loaded_at
            tables:
              - name: events
    """,
    "models/stg_events.sql": """
        {{ config(materialized='view') }}
        select id, region_id, amount, loaded_at from {{ source('ext', 'events') }}
        where amount >= {{ var('min_amount') }}
    """,
    "models/big_events.sql": """
        {{ config(materialized='ephemeral') }}
        select * from {{ ref('stg_events') }} where amount >= 10
    """,
    "models/region_names.sql": """
        {{ config(materialized='table') }}
        select region_id, upper(name) as name, '{{ env_var("PROP_LABEL", "none") }}' as label from {{ ref('regions') }}
    """,
    "models/mart_by_region.sql": """
        {{ config(materialized='table') }}
        select r.name, r.label, count(e.id) as events, coalesce(sum({{ scaled('e.amount') }}), 0) as total
        from {{ ref('region_names') }} r left join {{ ref('stg_events') }} e on e.region_id = r.region_id
        group by 1, 2
    """,
    "models/mart_big.sql": """
        {{ config(materialized='table') }}
        select region_id, count(*) as events, sum(amount) as total from {{ ref('big_events') }} group by 1
    """,
    "models/mart_regions.sql": """
        {{ config(materialized='view') }}
        select region_id, name from {{ ref('region_names') }}
    """,
    "models/mart_labels.sql": """
        {{ config(materialized='table') }}
        select region_id, '{{ var("label") }}' as var_label from {{ ref('regions') }}
    """,
    "models/mart_undeclared.sql": """
        {{ config(materialized='table') }}
        select count(*) as events, coalesce(sum(amount), 0) as total from ext.events
    """,
    "models/mart_contracted.sql": """
        {{ config(materialized='table') }}
        select cast(region_id as integer) as region_id, cast(name as varchar) as name from {{ ref('region_names') }}
    """,
}
SCHEMA = {
    "version": 2,
    "models": [
        {
            "name": "region_names",
            "columns": [
                {
                    "name": "name",
                    "data_tests": [
                        {
                            "accepted_values": {
                                "name": "known_names",
                                "arguments": {"values": ["NORTH", "SOUTH", "WEST", "EAST", "north", "south"]},
                                "config": {"severity": "warn"},
                            }
                        },
                        {"not_null": {"name": "names_present", "config": {"enabled": True}}},
                    ],
                }
            ],
        },
        {
            "name": "mart_contracted",
            "config": {"contract": {"enforced": True}},
            "columns": [{"name": "region_id", "data_type": "integer"}, {"name": "name", "data_type": "varchar"}],
        },
    ],
}
MARTS = ("mart_by_region", "mart_big", "mart_regions", "mart_labels", "mart_undeclared", "mart_contracted")
GX = {
    "none": [],
    "not_null": [{"expect_column_values_to_not_be_null": {"column": "name"}, "severity": "warn"}],
    "min_total": [{"expect_column_values_to_be_between": {"column": "total", "min_value": 40}, "severity": "warn"}],
}
"""Suites of ``main.mart_by_region``; each has an oracle in ``Side.gx_verdicts`` (its expectation's own SQL)."""

EDITS = st.one_of(
    st.tuples(st.just("sql"), st.sampled_from(["upper", "lower"])),
    st.tuples(st.just("macro"), st.integers(1, 3)),
    st.tuples(st.just("ephemeral"), st.sampled_from([5, 10, 20])),
    st.tuples(st.just("seed"), st.sampled_from(["west", "east"])),
    st.tuples(st.just("var"), st.sampled_from([0, 5, 15])),
    st.tuples(st.just("env"), st.sampled_from(["none", "a", "b"])),
    st.tuples(st.just("jinja_var"), st.sampled_from(["l0", "l1", "l2"])),
    st.tuples(st.just("source"), st.integers(1, 3)),
    st.tuples(st.just("test"), st.sampled_from(["loose", "tight"])),
    st.tuples(st.just("constraint"), st.booleans()),
    st.tuples(st.just("gx"), st.sampled_from(sorted(GX))),
    st.tuples(st.just("disable"), st.booleans()),
    st.tuples(st.just("delete"), st.sampled_from(["mart_big", "mart_labels", "mart_undeclared"])),
    st.tuples(st.just("signal"), st.sampled_from(["dbt", "gx", "recording"])),
    st.tuples(st.just("idle"), st.just(0)),
)


class Side:
    """One warehouse: ``stale`` is maintained by stale-only Headwater runs, ``full`` by full rebuilds."""

    def __init__(self, kind: str, root: Path, make_pg_database) -> None:
        self.kind = kind
        self.env: dict[str, str] = {}
        root.mkdir(parents=True, exist_ok=True)
        if kind == "duck":
            self.env["PROP_DUCKDB_PATH"] = str(root / f"{root.name}.duckdb")
            self.url = f"duckdb:///{self.env['PROP_DUCKDB_PATH']}"
        else:
            self.url = make_pg_database("prop")
            self.env.update(
                PROP_PG_HOST=PG_HOST,
                PROP_PG_PORT=str(PG_PORT),
                PROP_PG_USER=PG_USER,
                PROP_PG_DB=self.url.rsplit("/")[-1],
            )
        with self.engine() as engine, engine.begin() as conn:
            conn.execute(sa.text("create schema ext"))
            conn.execute(sa.text("create table ext.events (id int, region_id int, amount int, loaded_at timestamp)"))

    def engine(self):
        import contextlib

        @contextlib.contextmanager
        def opened():
            engine = sa.create_engine(self.url)
            try:
                yield engine
            finally:
                engine.dispose()  # the session ends: PostgreSQL reports its statistics when a session ends

        return opened()

    def execute(self, *statements: tuple[str, dict]) -> None:
        with self.engine() as engine, engine.begin() as conn:
            for sql, values in statements:
                conn.execute(sa.text(sql), values)

    def marts(self) -> dict[str, list[tuple]]:
        with self.engine() as engine, engine.connect() as conn:
            return {m: sorted(tuple(r) for r in conn.execute(sa.text(f"select * from main.{m}"))) for m in MARTS}

    def gx_verdicts(self, suite: str) -> dict[str, str]:
        """What each expectation of ``suite`` finds in ``main.mart_by_region`` here, by its own SQL (the oracle)."""
        queries = {
            "expect_column_values_to_not_be_null__name": "select count(*) from main.mart_by_region where name is null",
            "expect_column_values_to_be_between__total": "select count(*) from main.mart_by_region where total < 40",
        }
        wanted = {f"{next(iter(e))}__{next(iter(e.values()))['column']}" for e in GX[suite]}
        with self.engine() as engine, engine.connect() as conn:
            return {name: "warn" if conn.execute(sa.text(queries[name])).scalar() else "pass" for name in wanted}


class Project:
    """The dbt project both sides run, edited between runs; ``suites`` is the GX suites folder."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "prop"
        write_files(self.dir, FILES)
        self.schema = json.loads(json.dumps(SCHEMA))
        self.write_schema()
        self.suites = root / "suites"
        self.suites.mkdir()
        self.suite = "none"
        self.vars = {"min_amount": 0}
        self.env = {"PROP_LABEL": "none", "PROP_VAR_LABEL": "l0"}
        self.next_id = 1
        self.day = 1
        self.deleted: str | None = None
        self.signal: str | None = None

    def write_schema(self) -> None:
        (self.dir / "models" / "schema.yml").write_text(yaml.safe_dump(self.schema, sort_keys=False))

    def _tests(self) -> list[dict]:
        return self.schema["models"][0]["columns"][0]["data_tests"]

    def edit(self, what: str, value, sides: list[Side]) -> None:
        models = self.dir / "models"
        if what == "sql":
            path = models / "region_names.sql"
            path.write_text(
                path.read_text().replace("upper(name)", f"{value}(name)").replace("lower(name)", f"{value}(name)")
            )
        elif what == "macro":
            (self.dir / "macros" / "scaled.sql").write_text(
                f"{{% macro scaled(x) %}}({{{{ x }}}} * {value}){{% endmacro %}}\n"
            )
        elif what == "ephemeral":
            path = models / "big_events.sql"
            text = path.read_text()
            path.write_text(text[: text.rindex(">=")] + f">= {value}\n")
        elif what == "seed":
            seed = self.dir / "seeds" / "regions.csv"
            lines = seed.read_text().splitlines()
            seed.write_text("\n".join([*lines, f"{len(lines)},{value}"]) + "\n")
        elif what == "var":
            self.vars["min_amount"] = value
        elif what == "env":
            self.env["PROP_LABEL"] = value
        elif what == "jinja_var":
            self.env["PROP_VAR_LABEL"] = value
        elif what == "source":
            self.day += 1
            rows = [
                {
                    "i": self.next_id + i,
                    "r": 1 + i % 2,
                    "a": 4 * (i + 1) * self.day,
                    "t": f"2026-11-{self.day:02d} 0{i}:00",
                }
                for i in range(value)
            ]
            self.next_id += value
            insert = "insert into ext.events values (:i, :r, :a, cast(:t as timestamp))"
            for side in sides:
                side.execute(*((insert, row) for row in rows))
        elif what == "test":
            accepted = self._tests()[0]["accepted_values"]["arguments"]
            accepted["values"] = ["NORTH", "north"] if value == "tight" else SCHEMA_VALUES
            self.write_schema()
        elif what == "constraint":
            column = self.schema["models"][1]["columns"][0]
            column.pop("constraints", None)
            if value:
                column["constraints"] = [{"type": "not_null"}]
            self.write_schema()
        elif what == "gx":
            self.suite = value
            path = self.suites / "main.mart_by_region.yml"
            if GX[value]:
                path.write_text(yaml.safe_dump({"expectations": GX[value]}))
            else:
                path.unlink(missing_ok=True)
        elif what == "disable":
            self._tests()[1]["not_null"]["config"]["enabled"] = not value
            self.write_schema()
        elif what == "delete":
            self.deleted = str(value)  # by hand, on the side Headwater keeps: only it can tell
        elif what == "signal":
            self.signal = str(value)

    def vars_text(self) -> str:
        return "{" + ", ".join(f"{k}: {v}" for k, v in self.vars.items()) + "}"


SCHEMA_VALUES = SCHEMA["models"][0]["columns"][0]["data_tests"][0]["accepted_values"]["arguments"]["values"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, prefect_server: str):
    return {"root": tmp_path_factory.mktemp("prop"), "api": prefect_server}


def _materialize(project: Project, side: Side, env: dict[str, str], target: str) -> str:
    args = ["materialize", "--target", target, "--vars", project.vars_text()]
    where = ["--dbt-project", str(project.dir), "--profiles-dir", str(project.dir)]
    full_env = {**env, **side.env, **project.env}
    if project.signal:  # a signal at a phase of this run (if it reaches that phase), then retry finishes it
        phase, project.signal = project.signal, None
        stopped = interrupt_at([*args, *where], full_env, phase, signal.SIGTERM, or_end=True)
        assert stopped.returncode in (0, 143), stopped.output[-3000:]
        if stopped.returncode == 143:
            retried = run_cli(["retry", "--target", target, *where], full_env, check=False)
            assert retried.returncode == 0, retried.stdout[-3000:] + retried.stderr[-2000:]
            return retried.stdout
        return stopped.output
    proc = run_cli([*args, *where], full_env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc.stdout


def _full_rebuild(project: Project, side: Side, env: dict[str, str], target: str, root: Path) -> dict[str, str]:
    """Plain ``dbt build --full-refresh`` (dbt's own runner, in this process: an oracle, not a process boundary under
    test); the status of every test it ran, by unique id."""
    import os
    from unittest import mock

    from dbt.cli.main import dbtRunner

    from orchestration.dbt._compat import close_duckdb_environment

    command = ["--quiet", "build", "--full-refresh", "--target", target, "--vars", project.vars_text()]
    command += ["--project-dir", str(project.dir), "--profiles-dir", str(project.dir), "--no-partial-parse"]
    command += ["--target-path", str(root / "full_target"), "--log-path", str(root / "full_logs")]
    values = {**side.env, **project.env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    try:
        with mock.patch.dict(os.environ, values):  # dbt renders env_var() from this process's environment
            result = dbtRunner().invoke(command)
    finally:
        close_duckdb_environment()  # dbt-duckdb keeps the file open: the comparison opens it next
    assert result.success, result.exception or [(r.node.unique_id, r.message) for r in result.result or []]
    results = json.loads((root / "full_target" / "run_results.json").read_text())["results"]
    return {r["unique_id"]: r["status"] for r in results if r["unique_id"].startswith("test.")}


def _verdicts(side: Side, env: dict[str, str], target: str, root: Path) -> dict[str, str]:
    """Every check's last verdict in Headwater's run log: ``<asset>:<check name> -> status``."""
    latest = "select c.asset_key, c.check_name, c.status from {schema}check_results c "
    latest += "join {schema}runs r on r.run_id = c.run_id order by r.started_at"
    if target == "duck":
        with sqlite3.connect(Path(env["HEADWATER_DATA_DIR"]) / f"run_log_{target}.sqlite") as con:
            rows = con.execute(latest.format(schema="")).fetchall()
    else:  # the run log lives in the warehouse's headwater schema
        with side.engine() as engine, engine.connect() as conn:
            rows = conn.execute(sa.text(latest.format(schema="headwater."))).fetchall()
    return {f"{asset}:{name}": status for asset, name, status in rows}


def _expected(project: Project, full: Side, tests: dict[str, str], root: Path) -> dict[str, str]:
    """What the checks of the project as it is now give on the fully rebuilt warehouse."""
    manifest = json.loads((root / "full_target" / "manifest.json").read_text())
    expected = {}
    for uid, status in tests.items():
        node = manifest["nodes"][uid]
        model = manifest["nodes"][node["attached_node"]]
        expected[f"main.{model['alias']}:{node['name']}"] = status
    expected.update({f"main.mart_by_region:{n}": s for n, s in full.gx_verdicts(project.suite).items()})
    return expected


def _check_sequence(kind: str, home, make_pg_database, edits: list[tuple[str, object]]) -> None:
    root = home["root"] / uuid.uuid4().hex[:8]
    root.mkdir()
    env = base_env(root / "data", root / "prefect_home", api_url=home["api"])
    project = Project(root)
    env["HEADWATER_SUITES_DIR"] = str(project.suites)
    stale, full = Side(kind, root / "stale", make_pg_database), Side(kind, root / "full", make_pg_database)
    project.edit("source", 2, [stale, full])
    _materialize(project, stale, env, kind)  # the first run builds everything
    for step, (what, value) in enumerate(edits):
        project.edit(what, value, [stale, full])
        if project.deleted:
            stale.execute((f"delete from main.{project.deleted}", {}))
            project.deleted = None
        out = _materialize(project, stale, env, kind)
        tests = _full_rebuild(project, full, env, kind, root)
        where = f"after {edits[: step + 1]}"
        assert stale.marts() == full.marts(), f"{where}\n{out[-3000:]}"
        ours = _verdicts(stale, env, kind, root)
        expected = _expected(project, full, tests, root)
        assert {k: ours.get(k) for k in expected} == expected, f"{where}\n{out[-3000:]}"
    shutil.rmtree(root, ignore_errors=True)


PROPERTY = settings(
    max_examples=4,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.slow
@PROPERTY
@given(edits=st.lists(EDITS, min_size=2, max_size=3))
@example(edits=[("source", 2), ("idle", 0)])  # the first failure found: new rows under an ephemeral model
@example(edits=[("test", "tight"), ("gx", "min_total"), ("signal", "gx")])  # issue 29: checks changed or cut off
def test_stale_only_runs_leave_marts_and_verdicts_a_full_rebuild_leaves_on_duckdb(home, edits) -> None:
    _check_sequence("duck", home, None, edits)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xdist_group("state_property_postgres")  # beside the DuckDB half on another worker: each is minutes
@settings(PROPERTY, max_examples=2)
@given(edits=st.lists(EDITS, min_size=2, max_size=3))
@example(edits=[("jinja_var", "l1"), ("delete", "mart_labels"), ("constraint", True)])
def test_stale_only_runs_leave_marts_and_verdicts_a_full_rebuild_leaves_on_postgres(
    home, make_pg_database, edits
) -> None:
    _check_sequence("pg", home, make_pg_database, edits)
