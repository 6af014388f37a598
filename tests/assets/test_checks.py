"""What check outcomes mean for a run: blocking, stages, freshness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from assets import AssetGraph, AssetKey, AssetKind, AssetSpec, CheckSpec, Severity
from assets.checks import CheckOutcome, blocked_by, freshness_outcome, gate_stages
from assets.specs import period

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`

K = AssetKey.parse


def graph() -> AssetGraph:
    def spec(key: str, *deps: str) -> AssetSpec:
        return AssetSpec(key=K(key), kind=AssetKind.DBT_MODEL, deps=tuple(K(d) for d in deps))

    # raw -> a -> b -> c ; raw -> x -> y ; a -> y
    return AssetGraph.from_specs(
        [
            spec("s.raw"),
            spec("s.a", "s.raw"),
            spec("s.b", "s.a"),
            spec("s.c", "s.b"),
            spec("s.x", "s.raw"),
            spec("s.y", "s.x", "s.a"),
        ]
    )


def check(key: str, severity: Severity = Severity.ERROR) -> CheckSpec:
    return CheckSpec(asset_key=K(key), name="c", severity=severity, kind="gx")


def test_an_error_failure_blocks_exactly_the_downstream() -> None:
    blocked = blocked_by(graph(), [CheckOutcome(check("s.b"), "fail", 3)])
    assert set(blocked) == {K("s.c")}
    assert blocked[K("s.c")] == "blocking check s.b:c failed"


@pytest.mark.parametrize(
    ("severity", "status"), [(Severity.WARN, "fail"), (Severity.ERROR, "warn"), (Severity.ERROR, "pass")]
)
def test_warn_severity_and_passing_statuses_never_block(severity: Severity, status: str) -> None:
    assert blocked_by(graph(), [CheckOutcome(check("s.a", severity), status, 1)]) == {}


def test_warn_with_failing_rows_alerts() -> None:
    assert CheckOutcome(check("s.a", Severity.WARN), "warn", 2).alerting
    assert not CheckOutcome(check("s.a", Severity.WARN), "warn", 0).alerting


def test_stages_cut_after_each_gate() -> None:
    g = graph()
    keys = [K(k) for k in ("s.a", "s.b", "s.c", "s.x", "s.y")]
    assert gate_stages(g, keys, []) == [sorted(keys)]
    assert gate_stages(g, keys, [K("s.a")]) == [[K("s.a"), K("s.x")], [K("s.b"), K("s.c"), K("s.y")]]
    assert gate_stages(g, keys, [K("s.a"), K("s.b")]) == [[K("s.a"), K("s.x")], [K("s.b"), K("s.y")], [K("s.c")]]


def test_gates_carry_through_unselected_assets() -> None:
    assert gate_stages(graph(), [K("s.a"), K("s.c")], [K("s.a")]) == [[K("s.a")], [K("s.c")]]


def test_freshness_thresholds() -> None:
    now = datetime(2026, 11, 21, 12, tzinfo=UTC)
    spec = CheckSpec(
        asset_key=K("s.raw"),
        name="freshness",
        kind="freshness",
        config={"warn_after": timedelta(hours=1), "error_after": timedelta(hours=3)},
    )
    assert freshness_outcome(spec, now - timedelta(minutes=30), now).status == "pass"
    assert freshness_outcome(spec, now - timedelta(hours=2), now).status == "warn"
    stale = freshness_outcome(spec, now - timedelta(days=2), now)
    assert (stale.status, stale.message) == ("fail", "last load 2.0d ago, older than error_after 3.0h")
    assert freshness_outcome(spec, None, now).status == "fail"
    # a source whose freshness does not gate (dbt's meaning, for sources Headwater does not load) only warns
    advisory = CheckSpec(**{**spec.__dict__, "severity": Severity.WARN})
    assert freshness_outcome(advisory, now - timedelta(days=2), now).status == "warn"
    assert not freshness_outcome(advisory, now - timedelta(days=2), now).blocking


def test_period_parsing() -> None:
    assert period({"count": 24, "period": "hour"}) == timedelta(hours=24)
    assert period(None) is None and period({"count": None}) is None
    with pytest.raises(ValueError, match="period 'week'"):
        period({"count": 1, "period": "week"})
