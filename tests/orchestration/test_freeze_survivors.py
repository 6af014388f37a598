"""The console script freezes what survives a full garbage collection (``cli.gc_policy``): later full collections
skip those objects, cyclic garbage made after a freeze is still collected, and ``thaw`` undoes it (serving commands)."""

from __future__ import annotations

import gc
import weakref

import pytest

from orchestration.cli import gc_policy

pytestmark = pytest.mark.unit


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def frozen_policy():
    gc.unfreeze()
    gc_policy.freeze_survivors()
    gc_policy.freeze_survivors()  # idempotent: one callback
    try:
        yield
    finally:
        gc_policy.thaw()


def test_survivors_of_a_full_collection_are_frozen_and_later_cycles_still_collected(frozen_policy) -> None:
    assert gc.callbacks.count(gc_policy._freeze_after_full_collection) == 1
    kept = [_Node() for _ in range(1000)]
    gc.collect(1)  # a young collection freezes nothing
    assert gc.get_freeze_count() == 0
    gc.collect()
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept)  # what survived the full collection: the heap, these nodes among it

    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle made after the freeze, then dropped
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None, "cyclic garbage made after a freeze must still be collected"
    assert gc.get_freeze_count() >= frozen


def test_thaw_stops_freezing_and_gives_the_frozen_back(frozen_policy) -> None:
    gc.collect()
    assert gc.get_freeze_count() > 0
    gc_policy.thaw()
    assert gc.get_freeze_count() == 0
    assert gc_policy._freeze_after_full_collection not in gc.callbacks
    gc.collect()
    assert gc.get_freeze_count() == 0
