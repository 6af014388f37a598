"""Issue 29 findings 5 and 9 on PostgreSQL, through the real CLI over a foreign dbt project: the warehouse's own
change counters (``pg_stat_user_tables``) prove a source with no ``loaded_at_field`` unchanged, so an idle rerun
builds nothing; a row inserted or updated in place at the source, or deleted by hand from a mart, makes exactly its
readers (or the mart) stale."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.conftest import PG_HOST, PG_PORT, PG_USER, base_env, run_cli
from tests.orchestration.test_state_foreign import write_files

FILES = {
    "dbt_project.yml": """
        name: counted
        version: "1.0"
        profile: counted
        model-paths: [models]
        seed-paths: [seeds]
    """,
    "profiles.yml": """
        counted:
          target: pg
          outputs:
            pg:
              type: postgres
              host: "{{ env_var('COUNTED_PG_HOST') }}"
              port: "{{ env_var('COUNTED_PG_PORT') | int }}"
              user: "{{ env_var('COUNTED_PG_USER') }}"
              password: unused-under-trust-auth
              dbname: "{{ env_var('COUNTED_PG_DB') }}"
              schema: public
              threads: 2
    """,
    "seeds/regions.csv": "region_id,name\n1,north\n2,south\n",
    "models/sources.yml": """
        version: 2
        sources:
          - name: ext
            schema: ext
            tables:
              - name: events
    """,
    "models/events_by_region.sql": """
        {{ config(materialized='table') }}
        select region_id, count(*) as n, sum(amount) as total from {{ source('ext', 'events') }} group by 1
    """,
    "models/region_names.sql": """
        {{ config(materialized='table') }}
        select region_id, upper(name) as name from {{ ref('regions') }}
    """,
}
EVERYTHING = {"public.regions", "public.region_names", "public.events_by_region"}


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory, prefect_server: str, make_pg_database):
    root = tmp_path_factory.mktemp("counted")
    project = root / "counted"
    write_files(project, FILES)
    url = make_pg_database("counted")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("create schema ext"))
        conn.execute(sa.text("create table ext.events (id int, region_id int, amount int)"))
        conn.execute(sa.text("insert into ext.events values (1, 1, 10), (2, 2, 20)"))
    engine.dispose()  # the session ends and reports its counts: an open one reports them up to 10 s later
    env = base_env(root / "data", root / "prefect_home", api_url=prefect_server)
    env.update(
        COUNTED_PG_HOST=PG_HOST,
        COUNTED_PG_PORT=str(PG_PORT),
        COUNTED_PG_USER=PG_USER,
        COUNTED_PG_DB=url.rsplit("/")[-1],
    )
    found = {
        "root": root,
        "env": env,
        "engine": engine,
        "args": ["--dbt-project", str(project), "--profiles-dir", str(project)],
    }
    yield found
    engine.dispose()


def _run(counted) -> tuple[set[str], str]:
    proc = run_cli(["materialize", "--target", "pg", *counted["args"]], counted["env"], check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    log = counted["engine"]
    with log.connect() as conn:
        run_id = conn.execute(sa.text("select run_id from headwater.runs order by started_at desc limit 1")).scalar()
        rows = conn.execute(
            sa.text("select asset_key, status from headwater.materializations where run_id = :r"), {"r": run_id}
        ).fetchall()
    return {k for k, s in rows if s == "success"}, " ".join(proc.stdout.split())


def _write(counted, sql: str) -> None:
    with counted["engine"].begin() as conn:
        conn.execute(sa.text(sql))
    counted["engine"].dispose()  # the session ends: PostgreSQL reports its counts when a session ends


@pytest.mark.postgres
def test_change_counters_prove_a_source_unchanged_and_see_every_change_of_it(counted) -> None:
    built, _ = _run(counted)
    assert built == EVERYTHING
    built, out = _run(counted)
    assert built == set(), out[-3000:]  # no loaded_at_field, yet nothing to build: the counters did not move

    _write(counted, "update ext.events set amount = 11 where id = 1")  # an update in place: same row count
    built, out = _run(counted)
    assert built == {"public.events_by_region"}, out[-3000:]
    assert "source ext.events: its rows changed (the warehouse's change metadata moved" in out
    with counted["engine"].connect() as conn:
        assert conn.execute(sa.text("select sum(total) from public.events_by_region")).scalar() == 31

    _write(counted, "delete from public.region_names where region_id = 1")  # rows deleted by hand from a mart
    built, out = _run(counted)
    assert built == {"public.region_names"}, out[-3000:]
    assert "its rows changed outside Headwater since it was built" in out
    assert _run(counted)[0] == set()
