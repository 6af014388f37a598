"""The queue worker behind the task-run mirror and the checkpoints: in order, never stopped by a failing record,
and a close that waits a bounded time and says how many records it could not write."""

from __future__ import annotations

import threading

import pytest

from orchestration.engine.worker import QueueWorker

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`


def test_records_are_handled_in_order_and_a_failing_one_does_not_stop_the_rest() -> None:
    """A handler that raises (a bug, or a failure it did not expect) is named in ``errors``; the records after it
    are still written: before, the exception ended the thread and every later record was dropped silently."""
    seen: list[int] = []

    def handle(item: int) -> None:
        if item == 2:
            raise ValueError("a broken record")
        seen.append(item)

    with QueueWorker("test-writer", handle) as worker:
        for i in range(5):
            worker.put(i)
    assert seen == [0, 1, 3, 4]
    assert worker.errors == ["test-writer: ValueError: a broken record"]


def test_an_idle_hook_that_raises_is_named_and_the_worker_keeps_handling_records() -> None:
    seen: list[int] = []
    failed = threading.Event()

    def idle() -> None:
        failed.set()
        raise RuntimeError("heartbeat down")

    worker: QueueWorker[int] = QueueWorker("test-idle", seen.append, idle=idle, idle_every=0.01)
    assert failed.wait(30)
    worker.put(1)
    worker.close()
    assert seen == [1] and "test-idle: RuntimeError: heartbeat down" in worker.errors


def test_a_hung_writer_is_given_up_on_after_the_timeout_and_the_unwritten_records_are_counted() -> None:
    release = threading.Event()
    worker: QueueWorker[int] = QueueWorker("test-writer", lambda item: release.wait(30))
    for i in range(3):
        worker.put(i)
    worker.close(timeout=0.3)
    release.set()
    assert worker.errors == ["test-writer: 3 record(s) not written within 0.3 s (the writer hung)"]


def test_a_batch_worker_gets_every_waiting_record_at_once_and_all_of_them_before_it_closes() -> None:
    """The run-log checkpoints write what waits in one transaction; nothing put before close() is dropped."""
    batches: list[list[int]] = []
    gate = threading.Event()

    def handle(items: list[int]) -> None:
        gate.wait(30)  # the first batch blocks while more records queue up behind it
        batches.append(items)

    worker: QueueWorker[int] = QueueWorker("test-batches", handle, batch=True)
    worker.put(0)
    for i in range(1, 6):
        worker.put(i)
    gate.set()
    worker.close()
    assert [i for b in batches for i in b] == list(range(6)) and worker.errors == []
    assert len(batches) < 6, "records that waited were handled together"
