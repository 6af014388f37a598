"""Hostile arguments and an unreachable warehouse: a clear error, never a stack trace, never a leaked secret,
nothing lost."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.conftest import base_env, free_port, run_cli

PLANTED = "pl4nted-s3cret-do-not-print"


def _no_traceback(proc) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout[-2000:] + proc.stderr[-2000:]


def _files_containing(folder: Path, needle: str) -> list[Path]:
    hits = []
    for path in folder.rglob("*"):
        if path.is_file():
            try:
                if needle.encode() in path.read_bytes():
                    hits.append(path)
            except OSError:
                continue
    return hits


def test_unreachable_postgres_gives_a_clear_error_without_the_password(
    tmp_path: Path, prefect_server: str, prefect_server_home: Path
) -> None:
    env = base_env(tmp_path / "data", tmp_path / "prefect", prefect_server)
    env.update(
        HEADWATER_PG_HOST="127.0.0.1",
        HEADWATER_PG_PORT=str(free_port()),  # nothing listens there
        HEADWATER_PG_USER="headwater",
        HEADWATER_PG_PASSWORD=PLANTED,
        HEADWATER_PG_DATABASE="warehouse",
    )
    for args in (["ingest", "--target", "postgres"], ["materialize", "--target", "postgres"]):
        proc = run_cli(args, env, check=False)
        assert proc.returncode == 2, proc.stdout[-2000:]
        _no_traceback(proc)
        text = " ".join(proc.stdout.split())
        assert "the postgres warehouse does not answer at 127.0.0.1:" in text and "Nothing was loaded" in text
        assert PLANTED not in proc.stdout + proc.stderr
    diff = run_cli(["diff", "orders", "--from", "dev", "--to", "postgres"], env, check=False)
    assert diff.returncode == 2 and PLANTED not in diff.stdout + diff.stderr
    _no_traceback(diff)
    assert _files_containing(tmp_path, PLANTED) == []
    assert _files_containing(prefect_server_home, PLANTED) == [], "the Prefect server's database or log"


def test_a_missing_credential_names_the_variable(tmp_path: Path, prefect_server: str) -> None:
    env = base_env(tmp_path / "data", tmp_path / "prefect", prefect_server)
    env.update(HEADWATER_PG_HOST="127.0.0.1", HEADWATER_PG_USER="headwater", HEADWATER_PG_DATABASE="warehouse")
    proc = run_cli(["materialize", "--target", "postgres"], env, check=False)
    assert proc.returncode == 2
    _no_traceback(proc)
    assert "HEADWATER_PG_PASSWORD" in proc.stdout and "headwater-pg-password" in " ".join(proc.stdout.split())


HOSTILE = [
    (["materialize", "'; drop table raw_shop.orders; --"], "matches no asset"),
    (["materialize", "raw_shop.orders", "--exclude", "raw_shop.orders"], "matches no asset"),
    (["materialize", "nope:x"], "unknown selection method 'nope'"),
    (["assets", "+"], "cannot parse selection criterion"),
    (["lineage", "raw_shop.orders.id; drop table raw_shop.orders"], "has no column"),
    (["lineage", "🦆"], "not a column address"),
    (["diff", "orders", "--from", "marts", "--to", 'marts"; drop schema raw_shop cascade; --'], "no table"),
    (["diff", "orders; drop table x", "--from", "marts", "--to", "marts"], "no model named"),
    (["ingest", "../../etc/passwd"], "unknown ingestion source"),
]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> dict:
    root = tmp_path_factory.mktemp("hostile")
    env = base_env(root / "data", root / "prefect", prefect_server)
    run_cli(["ingest"], env)
    return {"env": env, "warehouse": root / "data" / "headwater.duckdb"}


def _raw_counts(warehouse: Path) -> dict[str, int]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables where table_schema like 'raw_%'"
        ).fetchall()
        return {f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0] for s, t in tables}


@pytest.mark.parametrize(("args", "expected"), HOSTILE, ids=[" ".join(a)[:40] for a, _ in HOSTILE])
def test_hostile_arguments_get_a_clear_error_and_touch_nothing(loaded: dict, args: list[str], expected: str) -> None:
    before = _raw_counts(loaded["warehouse"])
    proc = run_cli(args, loaded["env"], check=False)
    assert proc.returncode == 2, proc.stdout[-2000:]
    _no_traceback(proc)
    assert expected in " ".join(proc.stdout.split()), proc.stdout[-2000:]
    assert _raw_counts(loaded["warehouse"]) == before
