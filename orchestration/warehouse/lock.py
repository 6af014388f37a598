"""One run per target at a time: a file lock beside a DuckDB warehouse, an advisory lock on PostgreSQL.

Both are released by the operating system or the server when the holder dies (even by kill -9), so a
crashed run never leaves a target locked. A second run is refused at once with a message naming the
holder, or waits up to ``HEADWATER_LOCK_TIMEOUT`` seconds first.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from orchestration.project import Project
from orchestration.warehouse.targets import Target

TIMEOUT_ENV = "HEADWATER_LOCK_TIMEOUT"


class TargetBusy(RuntimeError):
    """Another Headwater run holds the target; the message names it and what to do."""


class WarehouseUnreachable(RuntimeError):
    """The target's server does not answer; the message names the address and where it is configured."""


def _timeout() -> float:
    try:
        return max(0.0, float(os.environ.get(TIMEOUT_ENV, "0") or 0))
    except ValueError:
        return 0.0


def _holder_text() -> str:
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:4]))
    return json.dumps(
        {"pid": os.getpid(), "since": datetime.now(UTC).isoformat(timespec="seconds"), "command": command}
    )


def _busy(target: Target, holder: str) -> TargetBusy:
    try:
        info = json.loads(holder)
        who = f"pid {info['pid']}, `{info['command']}`, since {info['since']}"
    except (ValueError, KeyError, TypeError):
        who = "another process"
    return TargetBusy(
        f"target {target.name} is busy: another Headwater run holds it ({who}). Wait for it to finish, "
        f"or set {TIMEOUT_ENV}=SECONDS to wait for it instead of stopping"
    )


@contextmanager
def target_lock(project: Project, target: Target) -> Iterator[None]:
    """Hold ``target`` for the duration of the block.

    Raises:
        TargetBusy: another run holds it (after waiting ``HEADWATER_LOCK_TIMEOUT`` seconds, default 0).
    """
    if target.type == "duckdb":
        with _file_lock(Path(str(target.config["path"])).with_suffix(".lock"), target):
            yield
    elif target.type == "postgres":
        with _advisory_lock(target):
            yield
    else:  # Snowflake has no session lock Headwater can hold; deployments serialize through Prefect
        yield


@contextmanager
def _file_lock(path: Path, target: Target) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + _timeout()
    with path.open("a+") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    raise _busy(target, handle.read()) from None
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(_holder_text())
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def advisory_key(target: Target) -> int:
    """A stable signed 64-bit key for the target's database."""
    name = f"headwater:{target.config.get('host')}:{target.config.get('dbname')}"
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def _advisory_lock(target: Target) -> Iterator[None]:
    import sqlalchemy as sa

    engine = sa.create_engine(target.sqlalchemy_url(), poolclass=sa.pool.NullPool)
    key = advisory_key(target)
    deadline = time.monotonic() + _timeout()
    try:
        try:
            connection = engine.connect()
        except sa.exc.OperationalError as exc:
            reason = (str(exc.orig).strip().splitlines() or ["no answer"])[0]
            raise WarehouseUnreachable(
                f"the {target.name} warehouse does not answer at {target.config.get('host')}:"
                f"{target.config.get('port', 5432)} ({reason}). Is the server up, and are the target's settings "
                f"(profiles/profiles.yml, output '{target.name}') right? Nothing was loaded or built."
            ) from None
        with connection:
            while not connection.execute(sa.text("select pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                connection.rollback()
                if time.monotonic() >= deadline:
                    holder = connection.execute(
                        sa.text(
                            "select a.pid, a.application_name, a.backend_start from pg_locks l "
                            "join pg_stat_activity a on a.pid = l.pid "
                            "where l.locktype = 'advisory' and l.granted limit 1"
                        )
                    ).first()
                    info = (
                        json.dumps(
                            {"pid": f"server {holder[0]}", "command": holder[1] or "headwater", "since": str(holder[2])}
                        )
                        if holder
                        else ""
                    )
                    raise _busy(target, info)
                time.sleep(0.5)
            connection.commit()
            try:
                yield
            finally:
                try:
                    connection.execute(sa.text("select pg_advisory_unlock(:k)"), {"k": key})
                    connection.commit()
                except sa.exc.DBAPIError:
                    pass  # the connection was lost (the warehouse went away): the server released the lock with it
    finally:
        engine.dispose()
