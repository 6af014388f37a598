"""Alert routing and payloads, delivered to a local HTTP receiver (Slack and PagerDuty cannot be reached here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.alerts import Alert, AlertConfigError, load_router

ALERT = Alert(
    asset_key="marts.orders",
    kind="dbt_model",
    error="boom",
    attempts=3,
    run_id="r-1",
    owners=("finance@x",),
    tags=("critical",),
    target="dev",
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "headwater.yml"
    path.write_text(text)
    return path


def test_routes_by_owner_and_tag_each_notifier_once(tmp_path: Path, receiver, monkeypatch) -> None:
    monkeypatch.setenv("RECV", receiver.url)
    router = load_router(
        write(
            tmp_path,
            """
alerts:
  notifiers:
    hook: {type: webhook, url: "${RECV}/hook"}
    pager: {type: pagerduty, url: "${RECV}/pd", routing_key: rk}
    other: {type: slack, url: "${RECV}/other"}
  routes:
    - {owner: finance@x, notify: [pager, hook]}
    - {tag: critical, notify: [pager]}
    - {owner: someone-else, notify: [other]}
""",
        )
    )
    router.dispatch([ALERT])
    assert sorted(p for p, _ in receiver.requests) == ["/hook", "/pd"]
    assert receiver.by_path("/pd")[0]["dedup_key"] == "headwater:r-1:marts.orders"
    assert router.errors == []


def test_unset_variable_turns_a_notifier_off(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    router = load_router(
        write(
            tmp_path,
            """
alerts:
  notifiers: {slack: {type: slack, url: "${NOPE}"}}
  routes: [{notify: [slack]}]
""",
        )
    )
    assert router.disabled == ["slack"] and router.notifiers_for(ALERT) == []


def test_unreachable_receiver_is_reported_not_raised(tmp_path: Path) -> None:
    router = load_router(
        write(
            tmp_path,
            """
alerts:
  notifiers: {hook: {type: webhook, url: "http://127.0.0.1:9/unreachable"}}
  routes: [{notify: [hook]}]
""",
        )
    )
    router.dispatch([ALERT])
    assert len(router.errors) == 1 and "marts.orders" in router.errors[0]


def test_bad_config_names_file_and_every_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
alerts:
  notifiers: {x: {type: email, url: "mailto:a"}}
  routes: [{notify: [y]}]
""",
    )
    with pytest.raises(AlertConfigError) as info:
        load_router(path)
    message = str(info.value)
    assert str(path) in message and "'email'" in message and "unknown notifier(s) y" in message
