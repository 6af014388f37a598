"""Signals at each phase of a run on PostgreSQL (see test_interrupts.py): the run ends interrupted, its run log in the
warehouse says so, the advisory lock is free, and ``headwater retry`` finishes the run."""

from __future__ import annotations

import signal
import time

import pytest

from tests.conftest import base_env, postgres_env, run_cli
from tests.reliability.signals import interrupt_at
from tests.reliability.test_interrupts import _expect_interrupted

POSTGRES_CASES = [
    ("ingest", signal.SIGTERM),
    ("gxraw", signal.SIGHUP),
    ("dbt", signal.SIGINT),
    ("gxmarts", signal.SIGTERM),
]

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_demo(tmp_path_factory: pytest.TempPathFactory, make_pg_database, prefect_server: str):
    root = tmp_path_factory.mktemp("interrupts_pg")
    env = postgres_env(base_env(root / "data", root / "prefect_home", prefect_server), make_pg_database("signals"))
    run_cli(["materialize", "--target", "postgres"], env)
    return {"env": env, "url": env}


@pytest.mark.parametrize(("phase", "signum"), POSTGRES_CASES, ids=[f"{p}-{s.name}" for p, s in POSTGRES_CASES])
def test_a_signal_on_postgres_ends_the_run_interrupted_and_frees_the_lock(pg_demo, phase: str, signum) -> None:
    import sqlalchemy as sa

    env = pg_demo["env"]
    stopped = interrupt_at(["materialize", "--all", "--target", "postgres"], env, phase, signum)
    _expect_interrupted(stopped, signum, phase)
    url = f"postgresql+psycopg2://{env['HEADWATER_PG_USER']}@{env['HEADWATER_PG_HOST']}:{env['HEADWATER_PG_PORT']}/"
    engine = sa.create_engine(url + env["HEADWATER_PG_DATABASE"])
    # advisory locks of this database only: other tests' runs on other workers hold theirs in their own databases
    held = (
        "select count(*) from pg_locks l join pg_database d on d.oid = l.database "
        "where l.locktype = 'advisory' and d.datname = current_database()"
    )
    with engine.connect() as conn:
        status = conn.execute(sa.text("select status from headwater.runs order by started_at desc limit 1")).scalar()
        locks = conn.execute(sa.text(held)).scalar()
        deadline = time.monotonic() + 5  # the server ends the run's sessions a moment after the process is gone
        while locks and time.monotonic() < deadline:
            time.sleep(0.1)
            locks = conn.execute(sa.text(held)).scalar()
    engine.dispose()
    assert status == "interrupted" and locks == 0
    retry = run_cli(["retry", "--target", "postgres"], env, check=False)
    assert retry.returncode == 0, retry.stdout[-3000:]
