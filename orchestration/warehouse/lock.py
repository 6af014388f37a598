"""Who may write where: one run per DuckDB file (a file lock beside it); on PostgreSQL, locks per asset.

On PostgreSQL a run holds the target's advisory lock *shared* (``headwater ingest`` alone holds it exclusively), then
one advisory lock per asset: exclusive for each asset it may write, shared for each asset outside that set which it
reads. Runs on disjoint assets overlap; a run that writes what another writes or reads waits. Every run takes its
locks in one global order (by lock key), so two runs can never wait for each other in a circle.

Both are released by the operating system or the server when the holder dies (even by kill -9), so a
crashed run never leaves a target locked. A second run is refused at once with a message naming the
holder, or waits up to ``HEADWATER_LOCK_TIMEOUT`` seconds first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlalchemy as sa

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from assets.errors import UserError
from orchestration.project import Project
from orchestration.warehouse.targets import Target

TIMEOUT_ENV = "HEADWATER_LOCK_TIMEOUT"


class TargetBusy(UserError, RuntimeError):
    """Another Headwater run holds the target; the message names it and what to do."""


class WarehouseUnreachable(UserError, RuntimeError):
    """The target's server does not answer; the message names the address and where it is configured."""


def lock_timeout() -> float:
    """``HEADWATER_LOCK_TIMEOUT`` in seconds (0: refuse at once)."""
    try:
        return max(0.0, float(os.environ.get(TIMEOUT_ENV, "0") or 0))
    except ValueError:
        return 0.0


def _holder_text() -> str:
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:4]))
    return json.dumps(
        {"pid": os.getpid(), "since": datetime.now(UTC).isoformat(timespec="seconds"), "command": command}
    )


def _tell_waiting(what: str, timeout: float | None) -> None:
    """One line on stderr when a run starts waiting for another, so a quiet terminal is not taken for a hang."""
    limit = "as long as it takes" if timeout is None else f"up to {timeout:g} s, {TIMEOUT_ENV}"
    print(f"waiting for {what}: another Headwater run holds it ({limit})", file=sys.stderr, flush=True)


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
def target_lock(project: Project, target: Target, *, shared: bool = False) -> Iterator[None]:
    """Hold ``target`` for the duration of the block; ``shared`` on PostgreSQL lets other shared holders in (runs
    that then lock their assets with :func:`asset_locks`) and keeps exclusive ones out.

    Raises:
        TargetBusy: another run holds it (after waiting ``HEADWATER_LOCK_TIMEOUT`` seconds, default 0).
    """
    if target.type == "duckdb":
        with _file_lock(Path(str(target.config["path"])).with_suffix(".lock"), target):
            yield
    elif target.type == "postgres":
        with _advisory_lock(target, shared=shared):
            yield
    else:  # Snowflake has no session lock Headwater can hold; deployments serialize through Prefect
        yield


@contextmanager
def _file_lock(path: Path, target: Target) -> Iterator[None]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout()
    told = False
    with path.open("a+") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    raise _busy(target, handle.read()) from None
                if not told:
                    _tell_waiting(f"target {target.name} ({path.name})", lock_timeout())
                    told = True
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


def asset_key_lock(target: Target, asset: str) -> int:
    """A stable signed 64-bit advisory key for one asset of the target's database."""
    name = f"headwater:{target.config.get('host')}:{target.config.get('dbname')}:asset:{asset}"
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _connect(target: Target) -> tuple[sa.Engine, sa.Connection]:
    import sqlalchemy as sa

    engine = target.engine(poolclass=sa.pool.NullPool)
    try:
        return engine, engine.connect()
    except sa.exc.OperationalError as exc:
        engine.dispose()
        reason = (str(exc.orig).strip().splitlines() or ["no answer"])[0]
        raise WarehouseUnreachable(
            f"the {target.name} warehouse does not answer at {target.config.get('host')}:"
            f"{target.config.get('port', 5432)} ({reason}). Is the server up, and are the target's settings "
            f"(profiles/profiles.yml, output '{target.name}') right? Nothing was loaded or built."
        ) from None


@contextmanager
def asset_locks(
    target: Target, writes: Iterable[str], reads: Iterable[str] = (), *, timeout: float | None = None
) -> Iterator[list[str]]:
    """Hold an exclusive lock per asset in ``writes`` and a shared one per asset in ``reads`` (PostgreSQL; elsewhere
    nothing: DuckDB has one writer, Snowflake runs take turns through Prefect). Locks are taken in lock-key order;
    ``timeout`` None waits as long as it takes (a deployment's run), else at most that many seconds. Yields what
    was waited for (``asset (seconds)``), for the run's notes.

    Raises:
        TargetBusy: an asset stayed held past ``timeout``; names it and the holder.
    """
    if target.type != "postgres":
        yield []
        return
    import sqlalchemy as sa

    written = set(writes)
    wanted = {asset_key_lock(target, a): (a, True) for a in written}
    wanted.update({asset_key_lock(target, a): (a, False) for a in set(reads) - written})
    engine, connection = _connect(target)
    waited: list[str] = []
    try:
        with connection:
            for key in sorted(wanted):
                asset, exclusive = wanted[key]
                call = "pg_try_advisory_lock" if exclusive else "pg_try_advisory_lock_shared"
                started = time.monotonic()
                told = False
                while not connection.execute(sa.text(f"select {call}(:k)"), {"k": key}).scalar():
                    connection.rollback()
                    if not told and timeout != 0:
                        _tell_waiting(f"asset {asset} on target {target.name}", timeout)
                        told = True
                    if timeout is not None and time.monotonic() - started >= timeout:
                        raise TargetBusy(
                            f"asset {asset} on target {target.name} is busy: another Headwater run "
                            f"{'writes or reads' if exclusive else 'writes'} it. Wait for it to finish, or set "
                            f"{TIMEOUT_ENV}=SECONDS to wait instead of stopping"
                        )
                    time.sleep(0.5)
                if time.monotonic() - started >= 1:
                    waited.append(f"{asset} ({time.monotonic() - started:.0f} s)")
            connection.commit()
            try:
                yield waited
            finally:
                try:
                    connection.execute(sa.text("select pg_advisory_unlock_all()"))
                    connection.commit()
                except sa.exc.DBAPIError:
                    pass  # the connection was lost: the server released the locks with it
    finally:
        engine.dispose()


@contextmanager
def _advisory_lock(target: Target, *, shared: bool = False) -> Iterator[None]:
    import sqlalchemy as sa

    key = advisory_key(target)
    deadline = time.monotonic() + lock_timeout()
    engine, connection = _connect(target)
    call = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
    told = False
    try:
        with connection:
            while not connection.execute(sa.text(f"select {call}(:k)"), {"k": key}).scalar():
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
                if not told:
                    _tell_waiting(f"target {target.name}", lock_timeout())
                    told = True
                time.sleep(0.5)
            connection.commit()
            try:
                yield
            finally:
                try:
                    unlock = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
                    connection.execute(sa.text(f"select {unlock}(:k)"), {"k": key})
                    connection.commit()
                except sa.exc.DBAPIError:
                    pass  # the connection was lost (the warehouse went away): the server released the lock with it
    finally:
        engine.dispose()
