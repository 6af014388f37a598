"""The engine's retry rounds and stage rules, with a fake dbt that replays results (pure: no dbt, no Prefect).

The real engine runs against dbt and a Prefect server in test_engine.py and test_dbt_semantics.py; here the
rule that matters is checked alone: a retry round never rebuilds a node that a final failure holds back.
"""

from __future__ import annotations

import pytest

from assets import build_asset_graph
from orchestration.dbt import executor
from orchestration.dbt.executor import BuildResult, NodeResult
from orchestration.engine.dbt_segment import DbtNodePolicy, DbtSegment

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`


def _node(kind: str, name: str, deps: list[str], **extra) -> dict:
    return {
        "resource_type": kind,
        "name": name,
        "package_name": "p",
        "fqn": ["p", name],
        "schema": "main",
        "alias": name,
        "original_file_path": f"models/{name}.sql",
        "depends_on": {"nodes": deps},
        "config": {"materialized": "table", **({"severity": "ERROR"} if kind == "test" else {})},
        "tags": [],
        **extra,
    }


MANIFEST = {
    "metadata": {"project_name": "p"},
    "nodes": {
        "model.p.a": _node("model", "a", []),
        "model.p.r": _node("model", "r", []),
        "model.p.b": _node("model", "b", ["model.p.a"]),
        "model.p.c": _node("model", "c", ["model.p.a", "model.p.r"]),
        "model.p.d": _node("model", "d", ["model.p.r"]),
        "test.p.unique_a": _node("test", "unique_a", ["model.p.a"], attached_node="model.p.a", test_metadata={"name": "unique"}),
    },
    "sources": {},
}  # fmt: skip


class FakeMirror:
    def __init__(self) -> None:
        self.finished: dict[str, str] = {}

    def open(self, node_id, at=None) -> None:
        pass

    def finish(self, node_id, outcome, message="", at=None) -> None:
        self.finished[node_id] = outcome


def test_a_retry_round_never_rebuilds_what_a_final_failure_holds_back(monkeypatch) -> None:
    """Round 1: the test on ``a`` fails (no budget), ``r`` fails (budget 1); dbt skips ``b``, ``c`` and ``d``.
    Round 2 rebuilds ``r`` and ``d`` (only ``r`` held them back), never ``c``, which reads ``a``, gated by the
    failed test, nor ``b``."""
    graph = build_asset_graph(manifest=MANIFEST)
    calls: list[set[str] | None] = []
    first = {
        "model.p.a": "success",
        "test.p.unique_a": "fail",
        "model.p.r": "error",
        "model.p.b": "skipped",
        "model.p.c": "skipped",
        "model.p.d": "skipped",
    }

    def fake_build(project, target, nodes=None, *, extra=(), options=None, on_event=None) -> BuildResult:
        calls.append(None if nodes is None else set(nodes))
        chosen = first if len(calls) == 1 else {uid: "success" for uid in nodes}
        return BuildResult(success=False, results=[NodeResult(uid, status, "", 0.0) for uid, status in chosen.items()])

    monkeypatch.setattr(executor, "build", fake_build)
    policies = {uid: DbtNodePolicy(1 if uid == "model.p.r" else 0, 0) for uid in first}
    segment = DbtSegment(None, None, graph, FakeMirror(), policies, sleep=lambda _: None)
    outcomes = segment.run(list(first))
    assert calls[1] == {"model.p.r", "model.p.d"}
    assert len(calls) == 2
    assert outcomes["model.p.c"].status == "skipped"
    assert outcomes["model.p.b"].status == "skipped"
    assert outcomes["model.p.d"].status == "success"
    assert outcomes["model.p.r"].attempts == 2


def test_a_node_dbt_did_not_report_is_a_failure_never_a_silent_success(monkeypatch) -> None:
    graph = build_asset_graph(manifest=MANIFEST)

    def fake_build(project, target, nodes=None, *, extra=(), options=None, on_event=None) -> BuildResult:
        return BuildResult(success=True, results=[NodeResult("model.p.a", "success", "", 0.0)])

    monkeypatch.setattr(executor, "build", fake_build)
    mirror = FakeMirror()
    outcomes = DbtSegment(None, None, graph, mirror, {}, sleep=lambda _: None).run(["model.p.a", "model.p.r"])
    assert outcomes["model.p.r"].failed and "did not run this node" in outcomes["model.p.r"].message
    assert mirror.finished["model.p.r"] == "failed"


def test_hooks_and_nodes_outside_the_plan_are_accounted_for(monkeypatch) -> None:
    graph = build_asset_graph(manifest=MANIFEST)

    def fake_build(project, target, nodes=None, *, extra=(), options=None, on_event=None) -> BuildResult:
        return BuildResult(
            success=False,
            results=[
                NodeResult("model.p.a", "success", "", 0.0),
                NodeResult("operation.p.p-on-run-end-0", "error", "hook failed", 0.0),
            ],
        )

    monkeypatch.setattr(executor, "build", fake_build)
    outcomes = DbtSegment(None, None, graph, FakeMirror(), {}, sleep=lambda _: None).run(["model.p.a"])
    hook = outcomes["operation.p.p-on-run-end-0"]
    assert hook.failed and not hook.planned and hook.attempts == 1
