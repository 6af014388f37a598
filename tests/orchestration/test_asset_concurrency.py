"""Concurrency by asset on PostgreSQL, really run: two `headwater materialize` processes on one PostgreSQL target.

On disjoint assets they work at the same time; on the same asset the second waits for the first (advisory locks per
asset, taken in one order). Nothing here rests on timing: each model waits inside the warehouse at a gate (a shared
advisory lock the test holds exclusively), so "at the same time" is seen as two models waiting at the gate together,
and "takes turns" as the second run announcing that it waits while the first is held at the gate. DuckDB keeps one
writer (tests/reliability).
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from tests.conftest import base_env, postgres_env, start_cli
from tests.orchestration.test_state_foreign import write_files

pytestmark = pytest.mark.postgres

GATE = (4244, 0)  # an advisory lock key (two-int form) no Headwater lock uses
_GATED = f"select {{id}} as id from (select pg_advisory_xact_lock_shared{GATE}) as gate"

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
    "models/left_lane.sql": _GATED.format(id=1),
    "models/right_lane.sql": _GATED.format(id=2),
    "models/shared_lane.sql": _GATED.format(id=3),
}


@pytest.fixture(scope="module")
def lanes(tmp_path_factory: pytest.TempPathFactory, make_pg_database, prefect_server: str):
    root = tmp_path_factory.mktemp("lanes")
    write_files(root / "lanes", FILES)
    database = make_pg_database("lanes")
    env = postgres_env(base_env(root / "data", root / "prefect_home", api_url=prefect_server), database)
    env["HEADWATER_LOCK_TIMEOUT"] = "600"  # a CLI run waits for the assets it shares instead of stopping
    args = ["--dbt-project", str(root / "lanes"), "--profiles-dir", str(root / "lanes"), "--target", "postgres"]
    engine = sa.create_engine(database)
    yield {"env": env, "args": args, "engine": engine}
    engine.dispose()


class _Run:
    """One `materialize --all -s <selection>` process; its output read as it comes."""

    def __init__(self, lanes, selection: str) -> None:
        self.proc = start_cli(["materialize", "--all", "-s", selection, *lanes["args"]], lanes["env"])
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def finish(self) -> str:
        self.proc.wait(timeout=600)
        self._reader.join(timeout=60)
        assert self.proc.returncode == 0, self.output()[-3000:]
        return self.output()


def _until(what: str, check, runs: list[_Run], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        ended = [r for r in runs if r.proc.poll() is not None]
        assert not ended, f"a run ended before {what}:\n{ended[0].output()[-3000:]}"
        assert time.monotonic() < deadline, f"never saw {what} in {timeout:g} s"
        time.sleep(0.2)


def _at_gate(conn) -> int:
    """How many sessions wait at the gate (models started, held)."""
    return conn.execute(
        sa.text(
            "select count(*) from pg_locks where locktype = 'advisory' and not granted "
            "and classid = :c and objid = :o and objsubid = 2"
        ),
        {"c": GATE[0], "o": GATE[1]},
    ).scalar()


def _gated(lanes):
    """The test's own session holding the gate closed; `open` releases it."""
    conn = lanes["engine"].connect()
    conn.execute(sa.text(f"select pg_advisory_lock{GATE}"))
    conn.commit()

    def at_gate() -> int:
        count = _at_gate(conn)
        conn.commit()  # a fresh view of pg_locks each time
        return count

    def open_gate() -> None:
        conn.execute(sa.text(f"select pg_advisory_unlock{GATE}"))
        conn.commit()
        conn.close()

    return at_gate, open_gate


def _spans(lanes, asset: str) -> list[tuple]:
    with lanes["engine"].connect() as conn:
        return conn.execute(
            sa.text(
                "select run_id, started_at, ended_at from headwater.materializations "
                "where status = 'success' and asset_key = :a order by started_at"
            ),
            {"a": asset},
        ).fetchall()


def test_runs_on_disjoint_assets_build_at_the_same_time(lanes) -> None:
    at_gate, open_gate = _gated(lanes)
    try:
        runs = [_Run(lanes, "left_lane"), _Run(lanes, "right_lane")]
        # both models are inside the warehouse at once: neither run waited for the other to finish

        def both_building() -> bool:
            waiting = [r.output() for r in runs if "waiting for" in r.output()]
            assert not waiting, f"a run on disjoint assets waited for the other: {waiting[0][-2000:]}"
            return at_gate() == 2

        _until("both disjoint models building at the same time", both_building, runs)
    finally:
        open_gate()
    outputs = [run.finish() for run in runs]
    assert not any("waiting for" in out for out in outputs), outputs
    assert [len(_spans(lanes, a)) for a in ("public.left_lane", "public.right_lane")] == [1, 1]


def test_runs_on_the_same_asset_take_turns(lanes) -> None:
    at_gate, open_gate = _gated(lanes)
    try:
        first = _Run(lanes, "shared_lane")
        _until("the first run's model building", lambda: at_gate() == 1, [first])
        second = _Run(lanes, "shared_lane")
        _until(
            "the second run waiting for public.shared_lane",
            lambda: "waiting for asset public.shared_lane on target postgres" in second.output(),
            [first, second],
        )
        assert at_gate() == 1, "the second run's model started while the first held the asset"
    finally:
        open_gate()
    first.finish()
    second.finish()
    spans = _spans(lanes, "public.shared_lane")
    assert len(spans) == 2, spans
    assert spans[1].started_at >= spans[0].ended_at, f"two runs built public.shared_lane at once: {spans}"


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
