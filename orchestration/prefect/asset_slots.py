"""Concurrency by asset where the warehouse has no lock Headwater can hold (Snowflake): Prefect global concurrency
limits, one per asset (``headwater-asset-<target>-<key>``, limit 1), created by ``headwater deploy``.

A run takes the slots of every asset it writes or reads in **one** request: Prefect's server acquires them all or
none in one transaction, so no run holds some while waiting for others and two runs cannot deadlock. Runs on
disjoint assets overlap; runs that share an asset (even one they only read) take turns, which is stricter than
PostgreSQL's shared read locks (``orchestration.warehouse.lock``) but never wrong. An asset without a limit (added
after the last deploy) is not held: deploy again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager

from orchestration.warehouse.targets import Target

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def slot_name(target: Target, asset: str) -> str:
    """The global concurrency limit that stands for ``asset`` on ``target``."""
    return _UNSAFE.sub("_", f"headwater-asset-{target.name}-{asset}")


def ensure_slots(target: Target, assets: Iterable[str]) -> list[str]:
    """Create (or reset to 1) the limit of each asset; returns their names."""
    from prefect.client.orchestration import get_client

    names = sorted({slot_name(target, a) for a in assets})
    with get_client(sync_client=True) as client:
        for name in names:
            client.upsert_global_concurrency_limit_by_name(name, 1)
    return names


@contextmanager
def asset_slots(
    target: Target, writes: Iterable[str], reads: Iterable[str] = (), *, timeout: float | None = None
) -> Iterator[None]:
    """Hold the slot of every asset in ``writes`` and ``reads`` for the block (all at once, see the module).

    Raises:
        TargetBusy: not acquired within ``timeout`` seconds (None: wait as long as it takes; 0: one try, which
            Prefect needs a moment for).
    """
    from prefect.concurrency.sync import concurrency

    from orchestration.warehouse.lock import TIMEOUT_ENV, TargetBusy

    names = sorted({slot_name(target, a) for a in [*writes, *reads]})
    if not names:
        yield
        return
    wait = None if timeout is None else max(timeout, _ONE_TRY)
    with ExitStack() as held:
        try:
            held.enter_context(concurrency(names, occupy=1, timeout_seconds=wait, strict=False))
        except TimeoutError:  # Prefect's AcquireConcurrencySlotTimeoutError is one
            raise TargetBusy(
                f"assets of this run on target {target.name} are busy: another Headwater run holds at least one of "
                f"them (Prefect concurrency limits headwater-asset-{target.name}-*). Wait for it to finish, or set "
                f"{TIMEOUT_ENV}=SECONDS to wait instead of stopping"
            ) from None
        yield


_ONE_TRY = 5.0
"""Seconds a "do not wait" acquisition still gets: Prefect's client times out before its first request at 0."""
