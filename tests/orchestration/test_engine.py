"""The engine against a real Prefect server: one task run per node, per-model retries, alerts, retry.

Runs Headwater over tests/fixtures/flaky_project, a dbt project it did not create (copied, then checked
unchanged): ``flaky`` fails once then succeeds (retries: 1); ``broken`` always fails (retries: 2) and
skips its two descendants; ``sibling`` is an independent branch.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, base_env, read_task_runs, run_cli

FIXTURE = REPO / "tests" / "fixtures" / "flaky_project"


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, prefect_server: str):
    from tests.conftest import Receiver

    root = tmp_path_factory.mktemp("engine")
    project = root / "flaky_project"
    shutil.copytree(FIXTURE, project)
    before = tree_digest(project)
    receiver = Receiver()
    alerts = root / "alerts.yml"
    alerts.write_text(
        yaml.safe_dump(
            {
                "alerts": {
                    "notifiers": {
                        "hook": {"type": "webhook", "url": "${TEST_RECEIVER}/webhook"},
                        "slack": {"type": "slack", "url": "${TEST_RECEIVER}/slack"},
                        "pager": {"type": "pagerduty", "url": "${TEST_RECEIVER}/pagerduty", "routing_key": "rk-1"},
                        "unset": {"type": "slack", "url": "${NOT_SET_ANYWHERE}"},
                    },
                    "routes": [
                        {"owner": "team-broken@example.com", "notify": ["pager", "slack"]},
                        {"notify": ["hook", "unset"]},
                    ],
                }
            }
        )
    )
    env = base_env(root / "data", root / "prefect_home")
    env.update(
        PREFECT_API_URL=prefect_server,
        FLAKY_DUCKDB_PATH=str(root / "flaky.duckdb"),
        HEADWATER_ALERTS_FILE=str(alerts),
        TEST_RECEIVER=receiver.url,
        HEADWATER_PYTHON_ASSETS="tests.fixtures.python_assets_flaky",
    )
    args = ["--dbt-project", str(project), "--profiles-dir", str(project)]
    first = run_cli(["materialize", *args], env, check=False)
    first_alerts = list(receiver.requests)
    env_fixed = {**env, "BROKEN": "0"}
    retried = run_cli(["retry", *args], env_fixed, check=False)
    status = run_cli(["status", *args], env_fixed)
    receiver.close()
    yield {
        "first": first,
        "retry": retried,
        "status": status,
        "alerts": first_alerts,
        "all_alerts": list(receiver.requests),
        "api": prefect_server,
        "unchanged": tree_digest(project) == before,
    }


def flow_run_id(output: str) -> str:
    import re

    match = re.search(r"flow run ([0-9a-f-]{36})", output)
    assert match, output
    return match.group(1)


def by_name(runs: list) -> dict:
    return {r.name: r for r in runs}


def test_failed_run_exits_nonzero_and_says_how_to_resume(run) -> None:
    assert run["first"].returncode == 1, run["first"].stdout + run["first"].stderr
    assert "headwater retry" in run["first"].stdout


def test_the_flow_run_carries_the_run_summary_as_a_markdown_artifact(run) -> None:
    import httpx

    # the REST API directly: Prefect 3.8's client sends unset filters as null (422), and empty flow-run and task-run
    # filters match no artifact
    body = {
        "artifacts": {"flow_run_id": {"any_": [flow_run_id(run["first"].stdout)]}},
        "sort": "CREATED_DESC",
        "limit": 10,
        "offset": 0,
    }
    response = httpx.post(f"{run['api']}/artifacts/filter", json=body, timeout=30)
    response.raise_for_status()
    (artifact,) = response.json()
    assert artifact["key"] == "headwater-run-summary" and artifact["type"] == "markdown"
    text = artifact["data"]
    assert text.startswith("# Headwater run on `") and ": failed" in text.splitlines()[0], text[:500]
    assert "| `main.broken` | failed | 3 | Runtime Error in model broken (models/broken.sql) |" in text, text
    assert "| `main.broken_child` | skipped |" in text, text


def test_a_run_on_a_standing_server_links_its_flow_run_page(run) -> None:
    """Prefect's UI URL derives from PREFECT_API_URL (``.../api`` -> ``...``); the link is the flow run's page."""
    output = " ".join(run["first"].stdout.split())
    ui = run["api"].removesuffix("/api")
    assert f"in Prefect's UI: {ui}/runs/flow-run/{flow_run_id(run['first'].stdout)}" in output, output[-2000:]


def test_one_task_run_per_node_named_by_key_with_edges(run) -> None:
    runs = by_name(read_task_runs(run["api"], flow_run_id(run["first"].stdout), expect_at_least=9))
    models = {
        "main.base",
        "main.sibling",
        "main.flaky",
        "main.child_of_flaky",
        "main.broken",
        "main.broken_child",
        "main.broken_grandchild",
    }
    assert models <= set(runs), sorted(runs)
    tests = [name for name in runs if ":" in name]
    assert sorted(tests) == ["main.broken_child:not_null_broken_child_id", "main.sibling:not_null_sibling_id"]
    assert len(runs) == len(models) + len(tests) + 2  # and the two Python assets
    upstream = {x.id for x in runs["main.child_of_flaky"].task_inputs["wait_for"]}
    assert upstream == {runs["main.flaky"].id}
    assert {x.id for x in runs["main.sibling:not_null_sibling_id"].task_inputs["wait_for"]} == {runs["main.sibling"].id}


def test_python_assets_run_after_their_upstream_in_the_same_flow(run) -> None:
    runs = by_name(read_task_runs(run["api"], flow_run_id(run["first"].stdout), expect_at_least=9))
    summary = runs["main.sibling_summary"]
    assert summary.state_name == "Completed"
    assert {x.id for x in summary.task_inputs["wait_for"]} == {runs["main.sibling"].id}
    assert summary.start_time >= runs["main.sibling"].end_time
    assert runs["main.broken_report"].state_name == "Skipped"


def test_flaky_model_succeeds_on_its_second_attempt(run) -> None:
    from prefect.client.orchestration import SyncPrefectClient

    runs = by_name(read_task_runs(run["api"], flow_run_id(run["first"].stdout), expect_at_least=9))
    flaky = runs["main.flaky"]
    assert (flaky.state_name, flaky.run_count) == ("Completed", 2)
    with SyncPrefectClient(run["api"]) as client:
        history = [s.name for s in client.read_task_run_states(flaky.id)]
    # each attempt ends within a second: recorded by how it ended alone (task_mirror.RUNNING_AFTER), one event each
    assert history == ["AwaitingRetry", "Completed"]
    assert flaky.start_time < flaky.end_time and flaky.total_run_time.total_seconds() > 0
    assert runs["main.child_of_flaky"].state_name == "Completed"


def test_broken_model_gets_budget_plus_one_attempts_and_skips_only_descendants(run) -> None:
    runs = by_name(read_task_runs(run["api"], flow_run_id(run["first"].stdout), expect_at_least=9))
    assert (runs["main.broken"].state_name, runs["main.broken"].run_count) == ("Failed", 3)
    message = runs["main.broken"].state.message or ""
    assert "broken beyond retries" in message, message  # the node's own error where Prefect's UI shows the state
    for name in ("main.broken_child", "main.broken_grandchild", "main.broken_child:not_null_broken_child_id"):
        assert runs[name].state_name == "Skipped", name
    for name in ("main.base", "main.sibling", "main.sibling:not_null_sibling_id"):
        assert runs[name].state_name == "Completed", name


def test_exactly_one_alert_per_routed_notifier(run) -> None:
    paths = sorted(path for path, _ in run["alerts"])
    assert paths == ["/pagerduty", "/slack", "/webhook"]
    hook = next(body for path, body in run["alerts"] if path == "/webhook")
    assert hook["asset_key"] == "main.broken" and hook["attempts"] == 3
    assert hook["owners"] == ["team-broken@example.com"]
    assert "broken beyond retries" in hook["error"]
    assert hook["run_id"] == flow_run_id(run["first"].stdout)
    pager = next(body for path, body in run["alerts"] if path == "/pagerduty")
    assert pager["routing_key"] == "rk-1" and pager["event_action"] == "trigger"
    assert pager["payload"]["component"] == "main.broken"
    slack = next(body for path, body in run["alerts"] if path == "/slack")
    assert "main.broken" in slack["text"] and "3 attempt" in slack["text"]
    assert "unset" in run["first"].stdout  # the notifier whose variable is unset is named as off


def test_retry_runs_only_failed_and_skipped_assets(run) -> None:
    assert run["retry"].returncode == 0, run["retry"].stdout + run["retry"].stderr
    runs = by_name(read_task_runs(run["api"], flow_run_id(run["retry"].stdout), expect_at_least=3))
    assert set(runs) == {
        "main.broken",
        "main.broken_child",
        "main.broken_grandchild",
        "main.broken_child:not_null_broken_child_id",
        "main.broken_report",
    }
    assert all(r.state_name == "Completed" for r in runs.values())
    assert len(run["all_alerts"]) == len(run["alerts"]), "a successful retry sends no alert"


def test_status_shows_the_run_log(run) -> None:
    out = run["status"].stdout
    broken = next(line for line in out.splitlines() if " main.broken " in line)
    assert "success" in broken
    flaky = next(line for line in out.splitlines() if " main.flaky " in line)
    assert " 2 " in flaky  # two attempts recorded


def test_foreign_project_is_left_unchanged(run) -> None:
    assert run["unchanged"]


def test_each_task_run_has_its_own_log_lines_and_a_failure_its_whole_error(run) -> None:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import LogFilter, LogFilterTaskRunId
    from prefect.client.schemas.sorting import LogSort

    runs = by_name(read_task_runs(run["api"], flow_run_id(run["first"].stdout), expect_at_least=9))

    def lines(name: str) -> list[str]:
        flt = LogFilter(task_run_id=LogFilterTaskRunId(any_=[runs[name].id]))
        with SyncPrefectClient(run["api"]) as client:
            return [
                log.message for log in client.read_logs(log_filter=flt, sort=LogSort.TIMESTAMP_ASC, limit=200, offset=0)
            ]

    broken = lines("main.broken")
    heads = [line.split("\n")[0] for line in broken]
    assert [h.split(" after ")[0] + h[h.rindex(" (") :] for h in heads] == [
        f"model.flaky.broken: {word} (attempt {n})"
        for n, word in ((1, "awaitingretry"), (2, "awaitingretry"), (3, "failed"))
    ], heads
    assert "broken beyond retries" in broken[-1] and broken[-1].startswith("model.flaky.broken: failed after")
    state = runs["main.broken"].state.message or ""
    assert "\n" not in state and state, "the state message is the error's first line; the logs hold the rest"
    base = lines("main.base")
    assert len(base) == 1 and base[0].startswith("model.flaky.base: completed after"), base
    assert base[0].endswith("(attempt 1)"), base
    assert not any("select" in line.lower() for line in base), "no SQL of a successful model in its logs"
    skipped = lines("main.broken_child")
    assert len(skipped) == 1 and "an upstream node failed" in skipped[0]

    from prefect.client.schemas.filters import LogFilterFlowRunId

    flt = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs["main.broken"].flow_run_id]))
    with SyncPrefectClient(run["api"]) as client:
        run_lines = [
            log.message
            for log in client.read_logs(log_filter=flt, sort=LogSort.TIMESTAMP_ASC, limit=200, offset=0)
            if log.task_run_id is None
        ]
    assert any(line.startswith("run ") and ": failed; assets: " in line for line in run_lines), run_lines
    assert "failed main.broken: Invalid Input Error: broken beyond retries" in run_lines, run_lines
