"""The engine alone: the retry state machine, transient warehouse errors, the stage builder and the task-run mirror,
with an injected dbt runner that replays results (and dbt's node events) and a recorder in place of Prefect. The
same parts run against real dbt and a real Prefect server in test_engine.py and test_dbt_semantics.py."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from assets import AssetGraph, AssetKey, CheckSpec, Severity, build_asset_graph
from orchestration.dbt.executor import BuildResult, NodeEvent, NodeResult, WarehouseConnectionError
from orchestration.engine.dbt_segment import DbtNodePolicy, DbtSegment, WarehouseLost
from orchestration.engine.outcomes import MirroredTask, Outcome
from orchestration.engine.plan import plan_run
from tests.orchestration.test_engine_rounds import MANIFEST

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`


class Recorder:
    """A TaskRecorder that keeps every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def open(self, node_id: str, at: datetime | None = None) -> None:
        self.calls.append(("open", node_id, ""))

    def finish(self, node_id: str, outcome: str, message: str = "", at: datetime | None = None) -> None:
        self.calls.append(("finish", node_id, outcome))

    def history(self, node_id: str) -> list[str]:
        return [outcome or kind for kind, node, outcome in self.calls if node == node_id]


class ReplayedDbt:
    """``executor.build`` replayed: round N answers ``rounds[N]`` (unique id -> status) for the nodes asked, sending
    dbt's start/finish events as dbt's callbacks do; an exception in ``rounds`` is raised instead."""

    def __init__(self, rounds: list[dict[str, str] | BaseException]) -> None:
        self.rounds = rounds
        self.asked: list[set[str] | None] = []

    def __call__(self, project, target, nodes=None, *, extra=(), options=None, on_event=None) -> BuildResult:
        self.asked.append(None if nodes is None else set(nodes))
        answer = self.rounds[min(len(self.asked), len(self.rounds)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        chosen = {uid: status for uid, status in answer.items() if nodes is None or uid in nodes}
        for uid, status in chosen.items():
            if on_event and status != "skipped":
                on_event(NodeEvent("start", uid))
                on_event(NodeEvent("finish", uid, status, "boom" if status == "error" else ""))
        results = [NodeResult(uid, status, "boom" if status == "error" else "", 0.0) for uid, status in chosen.items()]
        return BuildResult(success=all(s in ("success", "pass") for s in chosen.values()), results=results)


def _segment(dbt: ReplayedDbt, recorder: Recorder, budgets: dict[str, int], sleeps: list[float] | None = None):
    graph = build_asset_graph(manifest=MANIFEST)
    policies = {uid: DbtNodePolicy(budgets.get(uid, 0), 5.0) for uid in MANIFEST["nodes"]}
    return DbtSegment(
        None, None, graph, recorder, policies, sleep=(sleeps if sleeps is not None else []).append, runner=dbt
    )


ALL_PASS = {uid: ("pass" if uid.startswith("test.") else "success") for uid in MANIFEST["nodes"]}


def test_a_model_that_fails_once_is_retried_and_its_task_shows_both_attempts() -> None:
    recorder, sleeps = Recorder(), []
    first = {**ALL_PASS, "model.p.r": "error", "model.p.c": "skipped", "model.p.d": "skipped"}
    dbt = ReplayedDbt([first, ALL_PASS])
    outcomes = _segment(dbt, recorder, {"model.p.r": 1}, sleeps).run(list(MANIFEST["nodes"]))
    assert dbt.asked[1] == {"model.p.r", "model.p.c", "model.p.d"}, "the failed node and what it held back"
    assert outcomes["model.p.r"].status == "success" and outcomes["model.p.r"].attempts == 2
    assert recorder.history("model.p.r") == ["open", Outcome.AWAITING_RETRY, "open", Outcome.SUCCESS]
    assert sleeps == [5.0], "the retry delay of the node's policy"


def test_a_model_that_always_fails_gets_budget_plus_one_attempts_and_its_descendants_stay_skipped() -> None:
    recorder = Recorder()
    failing = {**ALL_PASS, "model.p.r": "error", "model.p.c": "skipped", "model.p.d": "skipped"}
    dbt = ReplayedDbt([failing])
    outcomes = _segment(dbt, recorder, {"model.p.r": 2}).run(list(MANIFEST["nodes"]))
    assert len(dbt.asked) == 3 and outcomes["model.p.r"].attempts == 3 and outcomes["model.p.r"].failed
    assert recorder.history("model.p.r")[-1] == Outcome.FAILED
    for held_back in ("model.p.c", "model.p.d"):
        assert outcomes[held_back].status == "skipped", held_back
        assert recorder.history(held_back)[-1] == Outcome.SKIPPED
    assert outcomes["model.p.b"].status == "success", "the branch that does not read r is built"


def test_a_lost_warehouse_is_retried_within_the_budget_then_every_node_fails_with_the_reason() -> None:
    lost = WarehouseConnectionError("dbt build could not run: ...", "connection refused")
    sleeps: list[float] = []
    outcomes = _segment(ReplayedDbt([lost, ALL_PASS]), Recorder(), {"model.p.a": 1}, sleeps).run(["model.p.a"])
    assert outcomes["model.p.a"].status == "success" and sleeps == [5.0]
    with pytest.raises(WarehouseLost, match="connection refused"):
        _segment(ReplayedDbt([lost]), Recorder(), {}).run(["model.p.a"])


def _graph_with_gx_error_suite_on(key: str) -> AssetGraph:
    graph = build_asset_graph(manifest=MANIFEST)
    suite = CheckSpec(AssetKey.parse(key), "rows_valid", Severity.ERROR, f"gx.{key}.rows_valid", kind="gx")
    return AssetGraph.from_specs(graph.specs.values(), [*graph.checks, suite], graph.nodes.values(), "p")


def test_a_gx_error_suite_cuts_the_build_into_stages_and_a_test_runs_with_its_asset() -> None:
    stages = plan_run(_graph_with_gx_error_suite_on("main.a")).stages()
    assert set(stages[0]) == {"model.p.a", "model.p.r", "model.p.d", "test.p.unique_a"}
    assert set(stages[1]) == {"model.p.b", "model.p.c"}, "a's readers wait for its suite"
    assert len(plan_run(build_asset_graph(manifest=MANIFEST)).stages()) == 1, "no gate: one stage"


def _recorded(monkeypatch) -> tuple[list[tuple[str, str | None, str, Any]], list[str]]:
    """The mirror's emitted states (task run name, previous state, state, the task run as sent) and its task runs'
    log lines, kept here: through Prefect's log worker, with no API URL set, they started Prefect's ephemeral server,
    which outlived the test run."""
    from orchestration.prefect import task_mirror

    emitted: list[tuple[str, str | None, str, Any]] = []
    lines: list[str] = []

    def record(task_run, initial_state, validated_state, follows):
        emitted.append(
            (task_run.name, initial_state and initial_state.name, validated_state.name, task_run.model_copy())
        )

    monkeypatch.setattr(task_mirror, "emit_task_run_state_change_event", record)
    monkeypatch.setattr(
        task_mirror, "api_log", lambda flow_run_id, level, text, at=None, task_run_id=None: lines.append(text)
    )
    return emitted, lines


def test_the_mirror_records_each_attempt_as_prefect_states_with_the_edges(monkeypatch) -> None:
    from orchestration.prefect import task_mirror

    emitted, lines = _recorded(monkeypatch)
    tasks: Iterable[MirroredTask] = [MirroredTask("a", "main.a"), MirroredTask("b", "main.b", upstream=("a",))]
    t0 = datetime.now(UTC)
    with task_mirror.TaskRunMirror(uuid4(), tasks) as mirror:
        mirror.open("a", t0)
        mirror.finish("a", Outcome.AWAITING_RETRY, "boom", t0 + timedelta(seconds=1))
        mirror.open("a", t0 + timedelta(seconds=2))
        mirror.finish("a", Outcome.SUCCESS, "", t0 + timedelta(seconds=3))
        mirror.finish("b", Outcome.SKIPPED, "upstream main.a failed", t0 + timedelta(seconds=3))
    assert mirror.errors == []
    a_states = [(initial, state) for name, initial, state, _ in emitted if name == "main.a"]
    assert a_states == [
        (None, "Running"),
        ("Running", "AwaitingRetry"),
        ("AwaitingRetry", "Retrying"),
        ("Retrying", "Completed"),
    ]
    b_events = [
        (state, [r.id for r in run.task_inputs["wait_for"]]) for name, _, state, run in emitted if name == "main.b"
    ]
    assert [state for state, _ in b_events] == ["Skipped"], "a node that never started: one event, its final state"
    assert b_events[-1][1] == [mirror.ids["a"]], "b's task run waits for a's"
    assert mirror.summary() == {"a": 2, "b": 0}, "attempts per node: a ran twice, b never"
    assert [line.splitlines()[0] for line in lines] == [
        "a: started (attempt 1)",
        "a: awaitingretry after 1.00 s",
        "a: started (attempt 2)",
        "a: completed after 1.00 s",
        "b: skipped",
    ], lines


def test_a_node_that_ends_within_a_second_is_one_event_carrying_its_start_end_and_run_time(monkeypatch) -> None:
    """The Prefect server's cost is per event: a quick node is recorded by its final state alone, which still
    carries when it started and ended; an attempt still running at close is recorded as Running."""
    from orchestration.prefect import task_mirror

    emitted, lines = _recorded(monkeypatch)
    tasks = [MirroredTask("a", "main.a"), MirroredTask("b", "main.b", upstream=("a",)), MirroredTask("c", "main.c")]
    t0 = datetime.now(UTC)
    with task_mirror.TaskRunMirror(uuid4(), tasks) as mirror:
        mirror.open("a", t0)
        mirror.finish("a", Outcome.SUCCESS, "", t0 + timedelta(milliseconds=300))
        mirror.open("b", t0 + timedelta(milliseconds=400))
        mirror.finish("b", Outcome.FAILED, "boom", t0 + timedelta(milliseconds=500))
        mirror.open("c", t0 + timedelta(milliseconds=600))  # never ends: interrupted before it could say
    assert mirror.errors == []
    assert [(name, initial, state) for name, initial, state, _ in emitted] == [
        ("main.a", None, "Completed"),
        ("main.b", None, "Failed"),
        ("main.c", None, "Running"),
    ]
    a_run = emitted[0][3]
    assert (a_run.start_time, a_run.end_time) == (t0, t0 + timedelta(milliseconds=300))
    assert a_run.total_run_time == timedelta(milliseconds=300) and a_run.run_count == 1
    assert [r.id for r in emitted[1][3].task_inputs["wait_for"]] == [mirror.ids["a"]], "edges kept"
    assert [line.splitlines()[0] for line in lines] == [
        "a: completed after 0.30 s (attempt 1)",
        "b: failed after 0.10 s (attempt 1)",
        "c: started (attempt 1)",
    ], lines


def test_the_run_summary_names_every_trouble_up_to_a_bound_and_counts_the_rest() -> None:
    from orchestration.engine.report import AssetResult, MaterializeReport, summary_markdown

    report = MaterializeReport(run_id="r1", target="dev", selection=None)
    for i in range(60):
        report.assets[f"main.m{i:02d}"] = AssetResult(
            f"main.m{i:02d}", "dbt_model", "failed", 1, None, None, message="a | b\nmore"
        )
    report.assets["main.ok"] = AssetResult("main.ok", "dbt_model", "success", 1, None, None)
    text = summary_markdown(report)
    assert text.splitlines()[0] == "# Headwater run on `dev`: failed"
    assert "assets: 60 failed, 1 success" in text
    assert "| `main.m00` | failed | 1 | a \\| b |" in text, "first line of the error, pipes escaped"
    assert "| ... | 10 more | | |" in text and "main.m50" not in text


@pytest.mark.parametrize(
    ("message", "line"),
    [
        (
            "Runtime Error in model broken (models/broken.sql)\n  Invalid Input Error: boom\n  more",
            "Invalid Input Error: boom",
        ),
        (
            "Database Error in test not_null_x_id (models/schema.yml)\n  syntax error at or near",
            "syntax error at or near",
        ),
        ("Runtime Error in model m (models/m.sql)", "Runtime Error in model m (models/m.sql)"),
        ("KeyError: 'x'\nTraceback ...", "KeyError: 'x'"),
        ("", ""),
    ],
)
def test_a_failures_headline_says_what_went_wrong_not_where(message: str, line: str) -> None:
    from orchestration.engine.outcomes import headline

    assert headline(message) == line
