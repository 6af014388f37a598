"""The run log's records and what they imply (staleness), with no storage: that lives in orchestration."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from assets.graph import AssetGraph
from assets.keys import AssetKey
from assets.specs import AssetKind, AssetSpec, CheckKind


@dataclass(frozen=True)
class Materialization:
    """One asset in one run: its status, attempts, times, rows and the code version it ran."""

    asset_key: str
    run_id: str
    status: str  # success | failed | skipped | unchanged | interrupted | fresh | observed (a source)
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None
    rows: int | None = None
    code_version: str | None = None
    kind: str = ""
    message: str = ""
    target: str = ""
    data_version: str | None = None
    """For a source Headwater does not load: what its readers were built from when it was observed to move (its
    newest ``loaded_at_field``, the warehouse's change metadata); for an asset Headwater built: its relation's data
    version when the run ended (``orchestration.warehouse.versions``), so rows changed by hand since are seen."""


@dataclass(frozen=True)
class CheckRecord:
    asset_key: str
    check_name: str
    run_id: str
    severity: str
    status: str  # pass | warn | fail | error | skipped | interrupted (a signal cut it off)
    failures: int | None = None
    message: str = ""
    code_version: str | None = None
    """The check's definition when it ran (``CheckSpec.code_version``): a different one now makes it due."""


UNFINISHED = ("failed", "skipped", "interrupted")
"""Statuses of a last attempt that leave an asset to build again."""


def stale_reasons(
    graph: AssetGraph,
    successful: Mapping[str, Materialization],
    latest: Mapping[str, Materialization] | None = None,
    *,
    blocked: Iterable[str] = (),
    now: datetime | None = None,
    present: Collection[str] | None = None,
    done: Iterable[AssetKey] = (),
    versions: Mapping[str, str] | None = None,
    forced: Mapping[AssetKey, str] | None = None,
) -> dict[AssetKey, str]:
    """Why each asset Headwater builds is stale; what is absent is fresh. A state-aware ``headwater materialize``
    builds exactly these (among those selected), and ``headwater assets``, ``status`` and the catalog show them: one
    function decides for all. When in doubt, stale.

    ``successful`` is the newest successful materialization per key (for a source Headwater does not load: the
    newest observation at which its ``loaded_at_field`` moved), ``latest`` the newest of any status, ``blocked`` the
    keys a blocking check failed on in its latest run, ``present`` the relations (``schema.identifier``, lower case)
    in the warehouse when it was looked at, ``done`` what this run materialized already (the dlt tables it
    ingested). Stale, in this order:

    - missing: never materialized, or (``present`` given) its relation is not in the warehouse;
    - unfinished: the last attempt failed, was skipped or interrupted, or a blocking check on it failed;
    - code changed since its last success (its code version differs: SQL, data-changing config, macros it calls,
      vars and env vars it reads, ephemeral models it inlines; a dlt table's columns and contract), or either
      code version is unknown;
    - due: ``meta.headwater.always: true``, or older than ``meta.headwater.max_age`` (``90s``, ``30m``, ``24h``,
      ``7d``);
    - upstream: an upstream asset is stale itself, or materialized after it (a dlt table that loaded rows), or is a
      source Headwater does not load whose ``loaded_at_field`` moved since, or that has no ``loaded_at_field``
      (nothing can tell that it did not change). Ephemeral models are looked through: what they read is upstream
      of their readers.

    Assets Headwater does not build (external sources, exposures, ephemeral models) are never stale themselves.
    """
    latest = latest or {}
    blocked = set(blocked)
    done = set(done)
    now = now or datetime.now(UTC)
    reasons: dict[AssetKey, str] = {}
    for key in graph.toposorted():
        spec = graph.specs[key]
        if not spec.builds:
            continue
        if key in done:  # loaded by this run; rows changed outside its loads still make its readers stale
            if spec.kind is AssetKind.DLT:
                changed = _changed_by_hand(spec, successful.get(str(key)), versions)
                if changed is not None:
                    reasons[key] = changed
            continue
        reason = _own_reason(spec, successful.get(str(key)), latest.get(str(key)), blocked, present, now)
        if reason is None and forced:
            reason = forced.get(key)
        if reason is None:
            reason = _changed_by_hand(spec, successful.get(str(key)), versions)
        if reason is None:
            reason = _unknown_inputs(graph, spec)
        if reason is None:
            reason = _upstream_reason(graph, spec, successful, reasons)
        if reason is not None:
            reasons[key] = reason
    return reasons


def _changed_by_hand(spec: AssetSpec, mine: Materialization | None, versions: Mapping[str, str] | None) -> str | None:
    """Its relation's data version now differs from the one recorded when it was last materialized."""
    if versions is None or mine is None or mine.data_version is None or mine.kind == "source":
        return None
    now = versions.get(spec.relation_name.lower())
    if now is None or now == mine.data_version:
        return None
    since = "outside its loads" if spec.kind is AssetKind.DLT else "outside Headwater since it was built"
    return f"its rows changed {since} ({_shown(mine.data_version)} -> {_shown(now)})"


def _shown(version: str) -> str:
    """A data version as people read it: ``5,046 rows``, or the counters' text."""
    if version.startswith("rows:") and version[5:].isdigit():
        count = int(version[5:])
        return f"{count:,} row{'' if count == 1 else 's'}"
    return version


INPUTS_NONE = ("none", "nothing", "[]")
"""``meta.headwater.inputs`` values that say a model reads nothing (its code alone makes its rows)."""


def _unknown_inputs(graph: AssetGraph, spec: AssetSpec) -> str | None:
    if spec.kind not in (AssetKind.DBT_MODEL, AssetKind.DBT_SNAPSHOT) or reads_through(graph, spec):
        return None
    declared = spec.meta.get("inputs")
    if declared is not None and str(declared).strip().lower() in INPUTS_NONE or declared == []:
        return None
    return (
        "its inputs are unknown: it has no ref() or source(), so it reads a hard-coded relation or files "
        "(read_parquet, read_csv) or nothing; set meta.headwater.inputs: none if it truly reads nothing"
    )


def _own_reason(
    spec: AssetSpec,
    mine: Materialization | None,
    last: Materialization | None,
    blocked: set[str],
    present: Collection[str] | None,
    now: datetime,
) -> str | None:
    if mine is None or mine.ended_at is None:
        return "never materialized"
    if present is not None and spec.kind is not AssetKind.DBT_FUNCTION and spec.relation_name.lower() not in present:
        return f"its relation {spec.relation_name} is not in the warehouse"
    if last is not None and last.status in UNFINISHED:
        return f"last attempt {last.status} (run {last.run_id[:8]})"
    if str(spec.key) in blocked:
        return "a blocking check on it failed in its last run"
    if spec.code_version is None:
        why = spec.unknown_code or "a computed env_var name, an unrenderable var, an unreadable Python module"
        return f"its code version cannot be known ({why}): rebuilt every run"
    if mine.code_version is None:
        return "its last materialization recorded no code version"
    if spec.code_version != mine.code_version:
        return "code changed since last materialization"
    return _due(spec.meta, mine.ended_at, now)


def reads_through(graph: AssetGraph, spec: AssetSpec) -> list[AssetKey]:
    """What ``spec`` reads once dbt has inlined its ephemeral models: each ephemeral dep is replaced by what it reads
    (transitively), since its SQL runs inside ``spec`` and its upstream data is ``spec``'s upstream data."""
    found: list[AssetKey] = []
    seen: set[AssetKey] = set()
    stack = list(reversed(spec.deps))
    while stack:
        dep = stack.pop()
        if dep in seen:
            continue
        seen.add(dep)
        upstream = graph.specs.get(dep)
        if upstream is not None and upstream.ephemeral:
            stack.extend(reversed(upstream.deps))
        else:
            found.append(dep)
    return found


def _upstream_reason(
    graph: AssetGraph, spec: AssetSpec, successful: Mapping[str, Materialization], reasons: Mapping[AssetKey, str]
) -> str | None:
    mine = successful.get(str(spec.key))
    if mine is None or mine.ended_at is None:  # _own_reason said "never materialized" already
        return None
    for dep in reads_through(graph, spec):
        upstream = graph.specs.get(dep)
        if upstream is None:
            continue
        if dep in reasons:
            return f"upstream {dep} is stale"
        theirs = successful.get(str(dep))
        if upstream.kind is AssetKind.SOURCE:  # observed by the run: its loaded_at_field, the warehouse's metadata
            if theirs is None or theirs.ended_at is None:
                if not upstream.config.get("loaded_at_field"):
                    return f"reads source {dep}, which has no loaded_at_field: nothing can tell that it did not change"
                return f"source {dep} has not been observed yet"
            if theirs.data_version is None or _after(theirs.ended_at, mine.ended_at):
                return f"source {dep}: {theirs.message}" if theirs.message else f"source {dep} has new data since"
            continue
        if theirs is not None and theirs.ended_at is not None and _after(theirs.ended_at, mine.ended_at):
            return f"upstream {dep} materialized since"
    return None


def _after(a: datetime, b: datetime) -> bool:
    return (a if a.tzinfo else a.replace(tzinfo=UTC)) > (b if b.tzinfo else b.replace(tzinfo=UTC))


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
    policy = meta.get("automation")
    if meta.get("max_age") in (None, "") and isinstance(policy, Mapping) and policy.get("max_age") not in (None, ""):
        meta = {"max_age": policy.get("max_age")}  # an automation's freshness policy says the same
    limit = max_age(meta.get("max_age"))
    if limit is None:
        if meta.get("max_age") not in (None, ""):
            return f"max_age {meta.get('max_age')!r} is not a duration (write e.g. 24h): rebuilt until it is"
        return None
    ended = ended if ended.tzinfo else ended.replace(tzinfo=UTC)
    if now - ended > limit:
        return f"older than its max_age {meta.get('max_age')}"
    return None


def blocked_keys(
    checks: Mapping[tuple[str, str], tuple[CheckRecord, Any]], graph: AssetGraph | None = None
) -> set[str]:
    """Assets whose newest result of an ``error``-severity check failed (the run log's ``latest_checks``); with
    ``graph``, only checks it still has (a test deleted after it failed blocks nothing any more)."""
    current = {(c.subject, c.name) for c in graph.checks} if graph is not None else None
    return {
        record.asset_key
        for pair, (record, _) in checks.items()
        if record.severity == "error" and record.status in ("fail", "error") and (current is None or pair in current)
    }


def stale_from_log(
    graph: AssetGraph,
    latest: Mapping[str, Materialization],
    successful: Mapping[str, Materialization],
    checks: Mapping[tuple[str, str], tuple[CheckRecord, Any]],
    now: datetime | None = None,
    *,
    present: Collection[str] | None = None,
    done: Iterable[AssetKey] = (),
) -> dict[AssetKey, str]:
    """:func:`stale_reasons` from what the run log holds (``RunLog.latest`` and ``RunLog.latest_checks``)."""
    return stale_reasons(
        graph, successful, latest, blocked=blocked_keys(checks, graph), now=now, present=present, done=done
    )


VERSIONED_CHECKS = (CheckKind.DBT_TEST, CheckKind.UNIT_TEST, CheckKind.GX)
"""Check kinds with a definition of their own (a code version): a new or changed one runs against its asset as it
stands. The others run with every load or read of their asset (freshness, quarantine, reconcile)."""


def due_checks(
    graph: AssetGraph,
    checks: Mapping[tuple[str, str], tuple[CheckRecord, Any]],
    keys: Collection[AssetKey] | None = None,
    successful: Mapping[str, Materialization] | None = None,
) -> dict[str, str]:
    """The checks whose last result does not judge their asset as it stands now, each with why: new (never ran),
    changed (its definition is not the one its last result ran with, or either is unknown), unfinished (a signal cut
    it off, it was skipped, or it errored without a verdict), or older than its asset (``successful``: a run killed
    after building the asset and before checking it). A state-aware run runs them against their assets without
    rebuilding them (a unit test, which dbt runs only with its model, rebuilds the model), and their results gate
    the readers as usual.

    ``checks`` is the run log's ``latest_checks``; ``keys`` limits the answer to checks on those assets. Tests on no
    asset always run and are not listed.
    """
    due: dict[str, str] = {}
    for check in graph.checks:
        if check.kind not in VERSIONED_CHECKS or check.asset_key is None:
            continue
        if keys is not None and not any(a in keys for a in check.assets):
            continue
        found = checks.get((check.subject, check.name))
        if found is None:
            due[check.unique_id] = "new: it has never run"
            continue
        record, ended = found
        run = record.run_id[:8]
        if record.status == "interrupted":
            due[check.unique_id] = f"it did not finish in run {run} (interrupted)"
        elif record.status in ("skipped", "error"):
            verdict = "was skipped" if record.status == "skipped" else "errored without a verdict"
            due[check.unique_id] = f"it {verdict} in run {run}: no result judges its asset as it stands"
        elif check.code_version is None:
            due[check.unique_id] = (
                "its definition cannot be versioned (it computes an env_var name or reads an unrenderable var): "
                "it runs every time"
            )
        elif record.code_version is None:
            due[check.unique_id] = f"its last result (run {run}) recorded no definition to compare"
        elif record.code_version != check.code_version:
            due[check.unique_id] = f"its definition changed since its last result (run {run})"
        elif (newer := _built_after(graph, check.assets, successful, ended)) is not None:
            due[check.unique_id] = f"it has not run since {newer} was built"
    return due


def _built_after(
    graph: AssetGraph, keys: Iterable[AssetKey], successful: Mapping[str, Materialization] | None, ended: Any
) -> AssetKey | None:
    """The asset among ``keys`` (that Headwater builds) materialized after the check's result (``ended``: its
    run's end; None for a run that never ended)."""
    if successful is None:
        return None
    for key in sorted(keys):
        spec = graph.specs.get(key)
        mine = successful.get(str(key))
        if spec is None or not spec.builds or mine is None or mine.ended_at is None or mine.kind == "source":
            continue
        if ended is None or (isinstance(ended, datetime) and _after(mine.ended_at, ended)):
            return key
    return None
