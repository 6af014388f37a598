"""Signals that stop a run: Ctrl-C (SIGINT), SIGTERM and SIGHUP end it *interrupted*, never as a success.

Inside :func:`interruptible` the first of them raises :class:`Interrupted` in the main thread, wherever the run is
(dbt cancels its queries and returns, dlt and GX stop), so the flow can record what did not finish, alert, free the
target lock and stop its children; the process then exits with 128 + the signal's number (130, 143, 129). A second
signal ends the process at once: what is recorded stays "running", which ``headwater retry`` treats as unfinished.
"""

from __future__ import annotations

import _weakrefset
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from orchestration.warehouse._compat import SQLALCHEMY_RELEASE_FUNCTIONS

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


_CLEANUP = frozenset({"close", "do_close", "dispose", "__del__", *SQLALCHEMY_RELEASE_FUNCTIONS})
"""Functions that release something (a connection, a pool): a signal arriving inside one is raised just
after it, not in it: an exception there leaks what it was releasing, and libraries log it with a traceback
(SQLAlchemy's pool did, closing a GX connection)."""
_SWALLOWING = frozenset({weakref.__file__, _weakrefset.__file__})
"""Modules whose functions Python calls as weak-reference callbacks (a WeakKeyDictionary's ``remove``, a
``finalize``): an exception raised in one is printed as "Exception ignored in" and dropped, so the run went on
and later reported the interruption a second time (CI saw it at the raw tables' checks)."""
_DEFER_AT_MOST = 2.0
_deferred: list[float] = []


def _in_cleanup(frame: FrameType | None) -> bool:
    depth = 0
    while frame is not None and depth < 40:
        if frame.f_code.co_name in _CLEANUP or frame.f_code.co_filename in _SWALLOWING:
            return True
        frame, depth = frame.f_back, depth + 1
    return False


def _handler(signum: int, frame: FrameType | None) -> None:
    if _shielded and not _received:  # recording what the run did: noted, the record is written first (bounded)
        _received.append(signum)
        return
    if not _received and _in_cleanup(frame):
        now = time.monotonic()
        if not _deferred or now - _deferred[0] < _DEFER_AT_MOST:
            _deferred[:1] = _deferred[:1] or [now]
            # ask again shortly: the release will have finished (a cleanup stuck for 2 s is interrupted anyway)
            timer = threading.Timer(0.05, os.kill, (os.getpid(), signum))
            timer.daemon = True
            timer.start()
            return
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


_shielded: list[bool] = []


@contextmanager
def shielded() -> Iterator[None]:
    """Within the block a first signal is noted (:func:`received`), not raised: the run's record is being written,
    and a record cut in half leaves a run 'running' that did everything. The block's steps are bounded and skip what
    is optional once a signal is noted (:func:`received`); a second signal still ends the process at once."""
    _shielded.append(True)
    try:
        yield
    finally:
        _shielded.pop()


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
