"""PostgreSQL going away mid-run, through a proxy that resets every connection (tests/reliability/proxy.py).

A short outage is absorbed by the retry budget; a lasting one ends the run with a clear error and an alert,
and leaves nothing half-written.
"""

from __future__ import annotations

import subprocess
import time

import pytest
import sqlalchemy as sa

from tests.conftest import PG_HOST, PG_PORT, base_env, postgres_env, run_cli, start_cli
from tests.reliability.proxy import Proxy


def _wait_for_first_model(engine: sa.Engine, proc: subprocess.Popen, runs_before: int, timeout: float = 300) -> None:
    """Until the run (the ``runs_before + 1``-th) has checkpointed its first staging model: dbt is building."""
    deadline = time.monotonic() + timeout
    query = sa.text(
        "select count(*) from headwater.materializations m join headwater.runs r using (run_id) "
        "where m.asset_key like 'staging.%' and r.started_at = (select max(started_at) from headwater.runs) "
        "and (select count(*) from headwater.runs) > :before"
    )
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended before the warehouse went down:\n{proc.stdout.read()[-3000:]}"
        try:
            with engine.connect() as conn:
                if conn.execute(query, {"before": runs_before}).scalar():
                    return
        except sa.exc.ProgrammingError:  # the run log's tables are not there yet
            pass
        time.sleep(0.2)
    raise AssertionError("dbt never started building")


def _relations(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        names = [
            r[0]
            for r in conn.execute(
                sa.text(
                    "select table_schema || '.' || table_name from information_schema.tables "
                    "where table_schema in ('staging', 'intermediate', 'marts') order by 1"
                )
            )
        ]
        return {n: conn.execute(sa.text(f"select count(*) from {n}")).scalar() for n in names}


@pytest.mark.postgres
def test_outage_mid_run_is_retried_then_fails_cleanly_with_an_alert(
    tmp_path, make_pg_database, receiver, prefect_server
) -> None:
    url = sa.make_url(make_pg_database("down"))
    direct = sa.create_engine(url, poolclass=sa.pool.NullPool)
    proxy = Proxy((PG_HOST, PG_PORT))
    env = postgres_env(
        base_env(tmp_path / "data", tmp_path / "prefect", prefect_server), url.render_as_string(hide_password=False)
    )
    env.update(
        HEADWATER_TARGET="postgres",
        HEADWATER_PG_HOST="127.0.0.1",
        HEADWATER_PG_PORT=str(proxy.port),
        HEADWATER_ALERT_WEBHOOK_URL=f"{receiver.url}/hook",
    )
    run_cli(["demo"], env)

    # 1. a 2-second outage while dbt builds: the nodes it breaks are retried after it and the run succeeds
    first = start_cli(["materialize", "--retries", "2", "--retry-delay", "5"], env)
    _wait_for_first_model(direct, first, 0)
    proxy.down()
    time.sleep(2)
    proxy.up()
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-4000:]
    assert proxy.dropped > 0
    with direct.connect() as conn:
        retried = conn.execute(sa.text("select count(*) from headwater.materializations where attempts > 1")).scalar()
        status = conn.execute(sa.text("select status from headwater.runs")).scalar()
    assert retried > 0 and status == "success", out[-4000:]
    built = _relations(direct)
    assert built["marts.orders"] > 0

    # 2. an outage that outlasts the retry budget: a clear terminal error, an alert, nothing half-written
    run_cli(["demo", "--advance"], env)
    alerts_before = len(receiver.by_path("/hook"))
    second = start_cli(["materialize", "--retries", "1", "--retry-delay", "1"], env)
    _wait_for_first_model(direct, second, 1)
    proxy.down()
    out, _ = second.communicate(timeout=600)
    text = " ".join(out.split())
    assert second.returncode == 1, out[-4000:]
    assert "Traceback" not in out
    assert f"the postgres warehouse stopped answering during the run (127.0.0.1:{proxy.port}" in text, out[-4000:]
    assert "run failed on target postgres" in text and "headwater retry" in text
    alerts = receiver.by_path("/hook")[alerts_before:]
    assert alerts, "no alert for the failed run"
    proxy.up()
    marts = {name: rows for name, rows in built.items() if name.startswith("marts.")}  # tables (the rest are views)
    assert {n: r for n, r in _relations(direct).items() if n in marts} == marts, "a mart changed in a failed run"
    # dbt's intermediate relations: dbt-postgres renames the old relation to <name>__dbt_backup, commits, and only
    # then drops the backup; an outage between the two leaves the backup (a fresh clone saw two). Only those of the
    # models this run built may remain, and the next run (dbt drops a stale backup before renaming) removes them.
    intermediate = (
        "select table_schema || '.' || table_name from information_schema.tables "
        "where table_name like '%%\\_\\_dbt\\_%%'"
    )
    with direct.connect() as conn:
        leftovers = conn.execute(sa.text(intermediate + " and table_schema not like 'pg\\_temp%%'")).scalars().all()
    assert all(n.rsplit("__dbt_", 1)[0] in built for n in leftovers), leftovers
    # the next run builds every model again; dbt drops a stale backup before it renames
    assert run_cli(["materialize"], env, check=False).returncode == 0
    deadline = time.monotonic() + 15  # temporary relations of the sessions the outage cut end with those sessions
    with direct.connect() as conn:
        left = conn.execute(sa.text(intermediate)).scalars().all()
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = conn.execute(sa.text(intermediate)).scalars().all()
    assert left == [], left

    direct.dispose()
    proxy.down()
