"""Signals that stop a run: Ctrl-C (SIGINT), SIGTERM and SIGHUP end it *interrupted*, never as a success.

Inside :func:`interruptible` the first of them raises :class:`Interrupted` in the main thread, wherever the run is
(dbt cancels its queries and returns, dlt and GX stop), so the flow can record what did not finish, alert, free the
target lock and stop its children; the process then exits with 128 + the signal's number (130, 143, 129). A second
signal ends the process at once: what is recorded stays "running", which ``headwater retry`` treats as unfinished.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_received: list[int] = []
_phase: list[str] = ["preparing"]
_at_exit: list[Callable[[], None]] = []


class Interrupted(KeyboardInterrupt):
    """The run was stopped by ``signum``; a KeyboardInterrupt, so dbt and other libraries clean up as for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _handler(signum: int, frame: object) -> None:
    if _received:  # a second signal: stop now (children first), record nothing more
        for stop in list(_at_exit):
            try:
                stop()
            except Exception:  # the process ends on the next line whatever happens here
                pass
        os._exit(128 + signum)
    _received.append(signum)
    raise Interrupted(signum)


@contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (main thread only; elsewhere a
    no-op). The handlers in place before (Prefect's own SIGTERM bridge during a flow) come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def received() -> Interrupted | None:
    """The interruption this process received, if any."""
    return Interrupted(_received[0]) if _received else None


def check() -> None:
    """Raise :class:`Interrupted` if a signal arrived (for code that swallowed it, like dbt's runner)."""
    if _received:
        raise Interrupted(_received[0])


def at(phase: str) -> None:
    """The run entered ``phase`` (``ingest``, ``dbt build``, ...): named when it is interrupted."""
    _phase[0] = phase


def phase() -> str:
    return _phase[0]


def on_exit(stop: Callable[[], None]) -> None:
    """Call ``stop`` before a second signal ends the process (a child to stop)."""
    _at_exit.append(stop)
