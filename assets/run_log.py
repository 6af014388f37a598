"""The run log's records and what they imply (staleness), with no storage: that lives in orchestration."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from assets.graph import AssetGraph
from assets.keys import AssetKey


@dataclass(frozen=True)
class Materialization:
    """One asset in one run: its status, attempts, times, rows and the code version it ran."""

    asset_key: str
    run_id: str
    status: str  # success | failed | skipped | unchanged
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None
    rows: int | None = None
    code_version: str | None = None
    kind: str = ""
    message: str = ""
    target: str = ""


@dataclass(frozen=True)
class CheckRecord:
    asset_key: str
    check_name: str
    run_id: str
    severity: str
    status: str
    failures: int | None = None
    message: str = ""


UNFINISHED = ("failed", "skipped", "interrupted")
"""Statuses of a last attempt that leave an asset to build again."""


def stale_reasons(
    graph: AssetGraph,
    successful: Mapping[str, Materialization],
    latest: Mapping[str, Materialization] | None = None,
    *,
    blocked: Iterable[str] = (),
    now: datetime | None = None,
) -> dict[AssetKey, str]:
    """Why each asset Headwater builds is stale; what is absent is fresh. ``headwater assets``, ``status`` and the
    catalog all ask this one function.

    ``successful`` is the newest successful materialization per key, ``latest`` the newest of any status, ``blocked``
    the keys a blocking check failed on in its latest run. Stale, in this order:

    - never materialized;
    - unfinished: the last attempt failed, was skipped or interrupted, or a blocking check on it failed;
    - code changed since its last success (its code version differs: SQL, data-changing config, macros it calls; a
      dlt table's columns and contract);
    - due: ``meta.headwater.always: true``, or older than ``meta.headwater.max_age`` (``90s``, ``30m``, ``24h``,
      ``7d``);
    - upstream data changed: an upstream asset materialized after it.

    Assets Headwater does not build (external sources, exposures) are never stale.
    """
    latest = latest or {}
    blocked = set(blocked)
    now = now or datetime.now(UTC)
    reasons: dict[AssetKey, str] = {}
    for key in graph.toposorted():
        spec = graph.specs[key]
        if not spec.builds:
            continue
        mine = successful.get(str(key))
        last = latest.get(str(key))
        if mine is None or mine.ended_at is None:
            reasons[key] = "never materialized"
            continue
        if last is not None and last.status in UNFINISHED:
            reasons[key] = f"last attempt {last.status} (run {last.run_id[:8]})"
            continue
        if str(key) in blocked:
            reasons[key] = "a blocking check on it failed in its last run"
            continue
        if spec.code_version and mine.code_version and spec.code_version != mine.code_version:
            reasons[key] = "code changed since last materialization"
            continue
        due = _due(spec.meta, mine.ended_at, now)
        if due:
            reasons[key] = due
            continue
        for dep in spec.deps:
            theirs = successful.get(str(dep))
            if theirs is not None and theirs.ended_at is not None and theirs.ended_at > mine.ended_at:
                reasons[key] = f"upstream {dep} materialized since"
                break
    return reasons


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def max_age(value: Any) -> timedelta | None:
    """``meta.headwater.max_age`` as a duration: a number of seconds or ``<n><s|m|h|d>``; None when unset or
    unreadable (an unreadable one is reported by the graph's checks, never read as 'no limit' silently)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    text = str(value).strip().lower()
    if len(text) > 1 and text[-1] in _UNITS:
        try:
            return timedelta(seconds=float(text[:-1]) * _UNITS[text[-1]])
        except ValueError:
            return None
    return None


def _due(meta: Mapping[str, Any], ended: datetime, now: datetime) -> str | None:
    if meta.get("always") is True:
        return "always rebuilt (meta.headwater.always)"
    limit = max_age(meta.get("max_age"))
    if limit is None:
        if meta.get("max_age") not in (None, ""):
            return f"max_age {meta.get('max_age')!r} is not a duration (write e.g. 24h): rebuilt until it is"
        return None
    ended = ended if ended.tzinfo else ended.replace(tzinfo=UTC)
    if now - ended > limit:
        return f"older than its max_age {meta.get('max_age')}"
    return None


def blocked_keys(checks: Mapping[tuple[str, str], tuple[CheckRecord, Any]]) -> set[str]:
    """Assets whose newest result of an ``error``-severity check failed (the run log's ``latest_checks``)."""
    return {
        record.asset_key
        for record, _ in checks.values()
        if record.severity == "error" and record.status in ("fail", "error")
    }


def stale_from_log(
    graph: AssetGraph,
    latest: Mapping[str, Materialization],
    successful: Mapping[str, Materialization],
    checks: Mapping[tuple[str, str], tuple[CheckRecord, Any]],
    now: datetime | None = None,
) -> dict[AssetKey, str]:
    """:func:`stale_reasons` from what the run log holds (``RunLog.latest`` and ``RunLog.latest_checks``)."""
    return stale_reasons(graph, successful, latest, blocked=blocked_keys(checks), now=now)
