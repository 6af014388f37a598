"""One background thread that consumes a queue: callers on any thread only put (dbt's threads never wait on Prefect
or the run log), and closing it is bounded and says what was not written.

Used by the task-run mirror (``orchestration.prefect.task_mirror``) and the run-log checkpoints
(``orchestration.engine.checkpoints``); both are context managers through it.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class QueueWorker(Generic[T]):
    """Runs ``handle(item)`` for each item put, in order, on one daemon thread named ``name``; or, with ``batch``,
    ``handle(items)`` with every item waiting at that moment (one transaction for many records).

    ``handle`` should record its own failures; one it lets escape (or ``idle``'s) is caught here and named in
    ``errors``, and the worker goes on with the next record. What :meth:`close` could not get written in time is
    added to ``errors`` too.
    """

    def __init__(
        self,
        name: str,
        handle: Callable[[T], None] | Callable[[list[T]], None],
        context: contextvars.Context | None = None,
        *,
        batch: bool = False,
        idle: Callable[[], None] | None = None,
        idle_every: float = 0.5,
    ) -> None:
        """``idle`` (optional) runs on the thread whenever nothing was put for ``idle_every`` seconds."""
        self.name = name
        self.errors: list[str] = []
        self._handle: Callable[[Any], None] = handle
        self._batch = batch
        self._idle = idle
        self._idle_every = idle_every
        self._queue: queue.SimpleQueue[T | None] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        run: Callable[..., Any] = (context or contextvars.copy_context()).run
        self._thread = threading.Thread(target=run, args=(self._loop,), name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        with self._lock:
            self._pending += 1
        self._queue.put(item)

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued, waiting at most ``timeout`` seconds; anything left is named in ``errors``."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            with self._lock:
                left = self._pending
            self.errors.append(f"{self.name}: {left} record(s) not written within {timeout:g} s (the writer hung)")

    def __enter__(self) -> QueueWorker[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _loop(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._idle_every) if self._idle else self._queue.get()
            except queue.Empty:
                if self._idle is not None:
                    self._guarded(self._idle)
                continue
            if item is None:
                return
            items, last = [item], False
            while self._batch and not last:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    last = True
                else:
                    items.append(more)
            try:
                self._guarded(self._handle, items if self._batch else item)
            finally:
                with self._lock:
                    self._pending -= len(items)
            if last:
                return

    def _guarded(self, call: Callable[..., None], *args: Any) -> None:
        """Run ``call``; an exception it raises is named in ``errors`` instead of ending the thread (every later
        record would then be dropped with nothing said)."""
        try:
            call(*args)
        except Exception as exc:  # the worker outlives any one record's failure
            message = f"{self.name}: {type(exc).__name__}: {exc}"
            with self._lock:
                if message not in self.errors:  # an idle hook failing every half second is said once
                    self.errors.append(message)
