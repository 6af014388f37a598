"""Automation policies: when an asset (or a group of them) should be built without anyone asking.

A policy attaches to assets in ``headwater.yml`` (``automation: <name>: {select: ..., <policy>}``) or in dbt
(``meta: {headwater: {automation: {<policy>}}}`` on a model, or ``+meta`` on a folder in ``dbt_project.yml``).
A policy says any of:

- ``on_upstream_update``: build the assets when an asset they read (outside the set) is materialized;
  ``true``, or ``{require: any | all, within: 10m}`` (``all``: every one of them within the window);
- ``on_cron``: a cron expression;
- ``on_missing: true``: build the ones that are missing when the automation is deployed;
- ``max_age``: a duration (``30m``, ``24h``, ``7d``); an asset older than that is stale (``meta.headwater.max_age``
  says the same), and a run starts when none of the set was materialized for that long.

This module resolves policies to :class:`Automation` values over the graph (pure); ``orchestration.prefect.
automations`` compiles them into Prefect deployment triggers and schedules.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from assets.graph import AssetGraph
from assets.keys import AssetKey
from assets.run_log import max_age, reads_through
from assets.selection import SelectionError, select

POLICY_KEYS = ("on_upstream_update", "on_cron", "on_missing", "max_age")
DEFAULT_WITHIN = timedelta(minutes=5)
"""How long a burst of upstream events counts as one (several tables of one load start one run)."""
_NAME = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,62}\Z")


class AutomationError(ValueError):
    """An automation policy cannot be read; the message names every offending entry, its file and the fix."""


@dataclass(frozen=True)
class Policy:
    """What an automation reacts to (see the module docstring)."""

    on_upstream_update: bool = False
    require: str = "any"
    within: timedelta = DEFAULT_WITHIN
    on_cron: str | None = None
    on_missing: bool = False
    max_age: timedelta | None = None
    max_age_text: str = ""

    def describe(self) -> list[str]:
        """The policy in words, one line per reaction."""
        lines = []
        if self.on_upstream_update:
            window = duration_text(self.within)
            how = "every upstream asset" if self.require == "all" else "any upstream asset"
            lines.append(f"on upstream update: {how} materialized (events within {window} start one run)")
        if self.on_cron:
            lines.append(f"on cron: {self.on_cron}")
        if self.on_missing:
            lines.append("on missing: built when deployed if not in the warehouse")
        if self.max_age is not None:
            lines.append(f"max age {self.max_age_text}: stale when older; a run starts when none was materialized")
        return lines


@dataclass(frozen=True)
class Automation:
    """A policy over a set of assets: ``assets`` are built (the stale ones) when the policy says so; ``upstream`` are
    the materialized assets outside the set that they read (what ``on_upstream_update`` listens to)."""

    name: str
    policy: Policy
    assets: tuple[AssetKey, ...]
    upstream: tuple[AssetKey, ...]
    origin: str
    """Where it is declared: ``headwater.yml: automation.<name>`` or ``dbt meta: <file>, ...``."""
    selection: str
    exclude: str | None = None

    def pending_after(self, graph: AssetGraph, asset: AssetKey, built: set[AssetKey] | frozenset[AssetKey]) -> bool:
        """Whether a materialization of ``asset`` leaves this automation something to do: some asset of the set reads
        it (directly or through others) and the run that materialized it did not build that one."""
        if asset not in self.upstream:
            return False
        readers = graph.downstream([asset]) & set(self.assets)
        return bool(readers - set(built))


def parse_policy(raw: Any, where: str, problems: list[str]) -> Policy | None:
    """A :class:`Policy` from its YAML mapping; problems are appended (naming ``where``), None when any."""
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a mapping of {', '.join(POLICY_KEYS)}")
        return None
    before = len(problems)
    unknown = sorted(set(raw) - {*POLICY_KEYS, "name", "select", "exclude"})
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(POLICY_KEYS)}")
    upstream = raw.get("on_upstream_update", False)
    require, within = "any", DEFAULT_WITHIN
    if isinstance(upstream, Mapping):
        require = str(upstream.get("require", "any"))
        if require not in ("any", "all"):
            problems.append(f"{where}: on_upstream_update.require must be any or all, not {require!r}")
        if upstream.get("within") is not None:
            parsed = max_age(upstream.get("within"))
            if parsed is None or parsed <= timedelta(0):
                problems.append(f"{where}: on_upstream_update.within {upstream.get('within')!r} is not a duration")
            else:
                within = parsed
        upstream = True
    elif not isinstance(upstream, bool):
        problems.append(f"{where}: on_upstream_update must be true/false or {{require: any|all, within: 10m}}")
    cron = raw.get("on_cron")
    if cron is not None and (not isinstance(cron, str) or len(cron.split()) not in (5, 6)):
        problems.append(f"{where}: on_cron {cron!r} is not a cron expression (five fields, e.g. '0 6 * * *')")
    missing = raw.get("on_missing", False)
    if not isinstance(missing, bool):
        problems.append(f"{where}: on_missing must be true or false")
    age_text = raw.get("max_age")
    age = max_age(age_text)
    if age_text not in (None, "") and (age is None or age <= timedelta(0)):
        problems.append(f"{where}: max_age {age_text!r} is not a duration (write e.g. 24h)")
    if len(problems) > before:
        return None
    policy = Policy(bool(upstream), require, within, cron, bool(missing), age, str(age_text or ""))
    if not (policy.on_upstream_update or policy.on_cron or policy.on_missing or policy.max_age):
        problems.append(f"{where}: says nothing to react to; set one of {', '.join(POLICY_KEYS)}")
        return None
    return policy


def resolve_automations(graph: AssetGraph, configured: Any, file: str = "headwater.yml") -> list[Automation]:
    """Every automation of the project: ``configured`` is headwater.yml's ``automation:`` mapping (name -> select,
    exclude and a policy); dbt's ``meta.headwater.automation`` adds one per distinct policy (named by its ``name:``,
    or ``dbt-<hash>``), over the assets that carry it.

    Raises:
        AutomationError: every problem at once (a bad policy, an unknown name, a selection that matches nothing).
    """
    problems: list[str] = []
    found: list[Automation] = []
    if configured not in (None, {}) and not isinstance(configured, Mapping):
        raise AutomationError(f"{file}: automation: must map names to policies, e.g. marts: {{select: ..., ...}}")
    for name, raw in sorted((configured or {}).items()):
        where = f"{file}: automation.{name}"
        if not _NAME.match(str(name)):
            problems.append(f"{where}: names are lower case letters, digits, - and _ (they name Prefect automations)")
            continue
        policy = parse_policy(raw, where, problems)
        if policy is None:
            continue
        selection, exclude = raw.get("select"), raw.get("exclude")
        if not isinstance(selection, str) or not selection.strip():
            problems.append(f"{where}: needs select: (a selection such as 'group:finance' or 'marts.orders+')")
            continue
        try:
            keys = {k for k in select(graph, selection, exclude) if graph.specs[k].builds}
        except SelectionError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if not keys:
            problems.append(f"{where}: select {selection!r} matches no asset Headwater builds")
            continue
        found.append(_automation(graph, str(name), policy, keys, where, selection, exclude))
    by_policy: dict[tuple[str, Policy], list[AssetKey]] = {}
    for key, spec in graph.specs.items():
        raw = spec.meta.get("automation") if spec.builds else None
        if raw is None:
            continue
        policy = parse_policy(raw, f"{spec.path or spec.unique_id}: meta.headwater.automation ({key})", problems)
        if policy is not None:
            name = str(raw.get("name") or "")
            by_policy.setdefault((name, policy), []).append(key)
    for (given, policy), members in sorted(by_policy.items(), key=lambda item: (item[0][0], sorted(item[1]))):
        name = given or "dbt-" + hashlib.sha1(repr(policy).encode()).hexdigest()[:8]
        files = sorted({graph.specs[k].path for k in members if graph.specs[k].path})
        where = f"dbt meta.headwater.automation: {', '.join(files[:3])}" + (" ..." if len(files) > 3 else "")
        if not _NAME.match(name):
            problems.append(f"{where}: name {name!r}: lower case letters, digits, - and _ only")
            continue
        selection = " ".join(f"key:{k}" for k in sorted(members))
        found.append(_automation(graph, name, policy, set(members), where, selection, None))
    names = [a.name for a in found]
    problems.extend(f"automation {n!r} is declared twice" for n in sorted({n for n in names if names.count(n) > 1}))
    if problems:
        raise AutomationError("\n".join(problems))
    return found


def _automation(
    graph: AssetGraph, name: str, policy: Policy, keys: set[AssetKey], where: str, selection: str, exclude: Any
) -> Automation:
    upstream = {
        dep
        for key in keys
        for dep in reads_through(graph, graph.specs[key])
        if dep not in keys and dep in graph.specs and graph.specs[dep].builds
    }
    return Automation(
        name=name,
        policy=policy,
        assets=tuple(sorted(keys)),
        upstream=tuple(sorted(upstream)),
        origin=where,
        selection=selection,
        exclude=str(exclude) if exclude else None,
    )


def duration_text(value: timedelta) -> str:
    """A duration as people write it in policies: ``10m``, ``24h``, ``90s``."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
