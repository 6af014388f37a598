"""The CLI's runs send their own flow-run heartbeats (``orchestration.prefect.heartbeat``): Prefect's heartbeat thread is off for the
flow call and the configured interval is handed to the flow; heartbeats go out at once and per interval, carry what
Prefect's engine sends, and their thread has ended when the run's block has (the run's end never waits on it)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from orchestration.prefect import heartbeat

pytestmark = pytest.mark.unit


def _flow_run(**extra):
    fields = dict(id=uuid.uuid4(), name="calm-otter", flow_id=uuid.uuid4(), deployment_id=None, tags=["nightly"])
    return SimpleNamespace(**(fields | extra))


def test_the_cli_turns_prefects_heartbeats_off_and_hands_their_interval_to_the_flow() -> None:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 45}):
        with heartbeat.cli_heartbeats():
            assert get_current_settings().flows.heartbeat_frequency is None
            assert heartbeat._interval.get() == 45
        assert get_current_settings().flows.heartbeat_frequency == 45
        assert heartbeat._interval.get() is None


def test_heartbeats_turned_off_by_the_user_stay_off() -> None:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        with heartbeat.cli_heartbeats():
            assert heartbeat._interval.get() is None  # no interval handed over: the flow sends none either


def test_a_heartbeat_names_the_flow_run_its_flow_deployment_and_tags() -> None:
    run = _flow_run(deployment_id=uuid.uuid4())
    event = heartbeat.heartbeat_event(run, "headwater-materialize")
    assert event["event"] == "prefect.flow-run.heartbeat"
    assert event["resource"]["prefect.resource.id"] == f"prefect.flow-run.{run.id}"
    assert event["resource"]["prefect.resource.name"] == "calm-otter"
    assert {(r["prefect.resource.role"], r["prefect.resource.id"]) for r in event["related"]} == {
        ("flow", f"prefect.flow.{run.flow_id}"),
        ("deployment", f"prefect.deployment.{run.deployment_id}"),
        ("tag", "prefect.tag.nightly"),
    }


def test_heartbeats_go_out_at_once_and_stop_when_the_block_ends() -> None:
    sent: list[dict] = []
    event = heartbeat.heartbeat_event(_flow_run(), "f")
    with heartbeat.heartbeats(event, 3600, lambda **kw: sent.append(kw)) as thread:
        for _ in range(1000):  # bounded: a thread that never sends fails the assertion below, not the suite
            if sent:
                break
            thread.join(0.01)
    assert not thread.is_alive(), "the block's end waited for the thread, which had ended"
    assert sent == [event]


def test_heartbeats_repeat_every_interval_and_survive_a_failed_send() -> None:
    sent: list[int] = []

    def emit(**_kw) -> None:
        sent.append(1)
        if len(sent) == 2:
            raise ConnectionError("server away")

    with heartbeat.heartbeats({}, 0.01, emit) as thread:
        for _ in range(1000):
            if len(sent) >= 4:
                break
            thread.join(0.01)
    assert not thread.is_alive() and len(sent) >= 4
