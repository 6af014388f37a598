"""Concurrency by asset on PostgreSQL, really run: two `headwater materialize` processes on one PostgreSQL target.

On disjoint assets they work at the same time; on the same asset the second waits for the first (advisory locks per
asset, taken in one order). The models sleep in the warehouse (``pg_sleep``) so that "at the same time" is visible in
the run log's materialization times, not a matter of luck. DuckDB keeps one writer (tests/reliability).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.conftest import base_env, postgres_env, start_cli
from tests.orchestration.test_state_foreign import write_files

pytestmark = pytest.mark.postgres

FILES = {
    "dbt_project.yml": """
        name: lanes
        version: "1.0"
        profile: lanes
        model-paths: [models]
        models:
          lanes:
            +materialized: table
    """,
    "profiles.yml": """
        lanes:
          target: postgres
          outputs:
            postgres:
              type: postgres
              host: "{{ env_var('HEADWATER_PG_HOST') }}"
              port: "{{ env_var('HEADWATER_PG_PORT') | as_number }}"
              user: "{{ env_var('HEADWATER_PG_USER') }}"
              password: "{{ env_var('HEADWATER_PG_PASSWORD') }}"
              dbname: "{{ env_var('HEADWATER_PG_DATABASE') }}"
              schema: public
              threads: 2
    """,
    "models/left_lane.sql": "select 1 as id from (select pg_sleep(5)) as slow",
    "models/right_lane.sql": "select 2 as id from (select pg_sleep(5)) as slow",
}


@pytest.fixture(scope="module")
def lanes(tmp_path_factory: pytest.TempPathFactory, make_pg_database, prefect_server: str):
    root = tmp_path_factory.mktemp("lanes")
    write_files(root / "lanes", FILES)
    database = make_pg_database("lanes")
    env = postgres_env(base_env(root / "data", root / "prefect_home", api_url=prefect_server), database)
    env["HEADWATER_LOCK_TIMEOUT"] = "300"  # a CLI run waits for the assets it shares instead of stopping
    args = ["--dbt-project", str(root / "lanes"), "--profiles-dir", str(root / "lanes"), "--target", "postgres"]
    engine = sa.create_engine(database)
    yield {"env": env, "args": args, "engine": engine}
    engine.dispose()


def _together(lanes, *selections: str) -> list[str]:
    """Start one `materialize --all -s <selection>` per selection at once; the run ids, in start order."""
    procs = [start_cli(["materialize", "--all", "-s", s, *lanes["args"]], lanes["env"]) for s in selections]
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
    with lanes["engine"].connect() as conn:
        return [r[0] for r in conn.execute(sa.text("select run_id from headwater.runs order by started_at"))]


def _spans(lanes, runs: list[str], asset: str | None = None) -> list[tuple]:
    where = f" and asset_key = '{asset}'" if asset else ""
    ids = ", ".join(f"'{r}'" for r in runs)
    with lanes["engine"].connect() as conn:
        return conn.execute(
            sa.text(
                "select run_id, asset_key, started_at, ended_at from headwater.materializations "
                f"where status = 'success' and run_id in ({ids}){where} order by started_at"
            )
        ).fetchall()


def test_runs_on_disjoint_assets_overlap_and_on_the_same_asset_take_turns(lanes) -> None:
    disjoint = _together(lanes, "left_lane", "right_lane")
    spans = _spans(lanes, disjoint)
    assert sorted(s.asset_key for s in spans) == ["public.left_lane", "public.right_lane"], spans
    first, second = spans
    assert second.started_at < first.ended_at, f"disjoint runs did not overlap: {spans}"

    before = set(disjoint)
    shared = [r for r in _together(lanes, "left_lane", "left_lane") if r not in before]
    spans = _spans(lanes, shared, "public.left_lane")
    assert len(spans) == 2, spans
    first, second = spans
    assert second.started_at >= first.ended_at, f"two runs built public.left_lane at once: {spans}"


def test_a_cli_run_that_may_not_wait_is_refused_naming_the_asset(lanes) -> None:
    """Another run holds public.left_lane (its lock, taken here in-process as a run takes it): a CLI run with
    HEADWATER_LOCK_TIMEOUT=0 stops at once, naming the asset, and writes nothing."""
    from orchestration.warehouse.lock import asset_locks
    from orchestration.warehouse.targets import Target

    env = lanes["env"]
    config = {"host": env["HEADWATER_PG_HOST"], "port": int(env["HEADWATER_PG_PORT"]), "user": env["HEADWATER_PG_USER"]}
    target = Target("postgres", "postgres", {**config, "dbname": env["HEADWATER_PG_DATABASE"], "password": "unused"})
    with asset_locks(target, ["public.left_lane"]):
        refused = start_cli(
            ["materialize", "--all", "-s", "left_lane", *lanes["args"]], {**env, "HEADWATER_LOCK_TIMEOUT": "0"}
        )
        out, _ = refused.communicate(timeout=300)
    assert refused.returncode != 0, out[-2000:]
    assert "asset public.left_lane on target postgres is busy" in " ".join(out.split()), out[-2000:]
