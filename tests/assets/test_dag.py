from __future__ import annotations

import pytest

from assets.dag import DAG, CycleError

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`


def test_toposort_is_deterministic_and_respects_edges() -> None:
    dag = DAG({"c": ["a", "b"], "b": ["a"], "d": [], "a": []})
    order = dag.toposorted()
    assert order == ["a", "d", "b", "c"]
    assert dag.levels() == [["a", "d"], ["b"], ["c"]]


def test_upstream_downstream_with_depth() -> None:
    dag = DAG({"b": ["a"], "c": ["b"], "d": ["c"]})
    assert dag.upstream(["d"]) == {"a", "b", "c"}
    assert dag.upstream(["d"], depth=1) == {"c"}
    assert dag.downstream(["a"], depth=2) == {"b", "c"}


def test_cycle_error_prints_the_cycle_path() -> None:
    dag = DAG({"a": ["c"], "b": ["a"], "c": ["b"], "x": ["a"]})
    with pytest.raises(CycleError) as info:
        dag.toposorted()
    assert info.value.cycle in (["a", "b", "c", "a"], ["b", "c", "a", "b"], ["c", "a", "b", "c"])
    assert str(info.value).startswith("dependency cycle: ")
    assert " -> " in str(info.value)
