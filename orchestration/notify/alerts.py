"""Per-asset alerts: when an asset's last attempt fails, its routes' notifiers get one message each.

Configured in ``headwater.yml`` at the project root (``HEADWATER_ALERTS_FILE`` points elsewhere)::

    alerts:
      notifiers:
        ops: {type: webhook, url: "${HEADWATER_ALERT_WEBHOOK_URL}"}
        analytics-slack: {type: slack, url: "${HEADWATER_SLACK_WEBHOOK_URL}"}
        oncall: {type: pagerduty, routing_key: "${HEADWATER_PAGERDUTY_ROUTING_KEY}"}
      routes:
        - {owner: finance@headwater.example, notify: [oncall]}
        - {tag: critical, notify: [oncall]}
        - {notify: [ops]}            # no owner/tag: matches every asset

A notifier whose ``${VAR}`` is unset is off (listed once in the run summary), so a laptop without
webhooks runs quietly. Delivery failures are reported, never raised: an alert must not fail the run.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets.errors import UserError

PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class AlertConfigError(UserError, ValueError):
    """headwater.yml's alerts section is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Alert:
    """One failed asset: what a notifier says."""

    asset_key: str
    kind: str
    error: str
    attempts: int
    run_id: str
    run_url: str | None = None
    owners: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    target: str = ""

    @property
    def summary(self) -> str:
        return f"Headwater: {self.asset_key} failed after {self.attempts} attempt(s): {self.error[:300]}"

    def as_json(self) -> dict[str, Any]:
        return {
            "event": "asset_failed",
            "asset_key": self.asset_key,
            "kind": self.kind,
            "owners": list(self.owners),
            "tags": list(self.tags),
            "error": self.error,
            "attempts": self.attempts,
            "run_id": self.run_id,
            "run_url": self.run_url,
            "target": self.target,
        }


@dataclass(frozen=True)
class Notifier:
    name: str
    type: str  # webhook | slack | pagerduty
    url: str | None
    routing_key: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.url) and (self.type != "pagerduty" or bool(self.routing_key))

    def payload(self, alert: Alert) -> dict[str, Any]:
        if self.type == "slack":
            fields = [
                {"type": "mrkdwn", "text": f"*Asset*\n`{alert.asset_key}`"},
                {"type": "mrkdwn", "text": f"*Owner*\n{', '.join(alert.owners) or 'unowned'}"},
                {"type": "mrkdwn", "text": f"*Attempts*\n{alert.attempts}"},
                {"type": "mrkdwn", "text": f"*Run*\n{alert.run_url or alert.run_id}"},
            ]
            return {
                "text": alert.summary,
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": f":red_circle: {alert.summary}"}},
                    {"type": "section", "fields": fields},
                ],
            }
        if self.type == "pagerduty":
            return {
                "routing_key": self.routing_key,
                "event_action": "trigger",
                "dedup_key": f"headwater:{alert.run_id}:{alert.asset_key}",
                "payload": {
                    "summary": alert.summary[:1024],
                    "source": f"headwater/{alert.target or 'default'}",
                    "severity": "error",
                    "component": alert.asset_key,
                    "group": alert.kind,
                    "custom_details": alert.as_json(),
                },
                "links": [{"href": alert.run_url, "text": "Prefect flow run"}] if alert.run_url else [],
            }
        return alert.as_json()

    def send(self, alert: Alert, timeout: float = 10.0) -> None:
        body = json.dumps(self.payload(alert)).encode()
        request = urllib.request.Request(
            self.url or "", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()


@dataclass(frozen=True)
class Route:
    notify: tuple[str, ...]
    owner: str | None = None
    tag: str | None = None

    def matches(self, alert: Alert) -> bool:
        if self.owner is not None and self.owner not in alert.owners:
            return False
        return not (self.tag is not None and self.tag not in alert.tags)


@dataclass
class AlertRouter:
    notifiers: dict[str, Notifier] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    sent: list[tuple[str, str]] = field(default_factory=list)  # (notifier, asset key)
    errors: list[str] = field(default_factory=list)

    @property
    def disabled(self) -> list[str]:
        return sorted(name for name, n in self.notifiers.items() if not n.enabled)

    def notifiers_for(self, alert: Alert) -> list[Notifier]:
        names: list[str] = []
        for route in self.routes:
            if route.matches(alert):
                names.extend(n for n in route.notify if n not in names)
        return [self.notifiers[n] for n in names if self.notifiers[n].enabled]

    def dispatch(self, alerts: Iterable[Alert], deadline: float | None = None) -> None:
        """Send each alert to the notifiers its routes select, several at once, all within ``deadline`` seconds
        (``HEADWATER_ALERT_DEADLINE``, default 5): a slow, dripping or silent endpoint costs the run at most that.
        A socket timeout bounds each read, not a request (a server that drips a byte every few seconds never
        times out), so the deadline is kept here: what has not finished by then is reported, never waited for.
        """
        deadline = deadline if deadline is not None else float(os.environ.get("HEADWATER_ALERT_DEADLINE", 5))
        jobs = [(alert, notifier) for alert in alerts for notifier in self.notifiers_for(alert)]
        if not jobs:
            return
        by_notifier: dict[str, list[int]] = {}
        for index, (_, notifier) in enumerate(jobs):
            by_notifier.setdefault(notifier.name, []).append(index)
        results: dict[int, str | None] = {}
        stop = time.monotonic() + deadline

        def work(indexes: list[int]) -> None:
            for index in indexes:  # one endpoint's messages in order; a slow endpoint delays only its own
                if time.monotonic() >= stop:
                    return
                alert, notifier = jobs[index]
                try:
                    notifier.send(alert, timeout=max(0.5, stop - time.monotonic()))
                    results[index] = None
                except OSError as exc:  # URLError, HTTPError and timeouts are all OSErrors
                    results[index] = str(exc)

        # daemon threads, one per notifier: one stuck on a dripping endpoint is abandoned at the deadline and never
        # holds the process's exit
        workers = [
            threading.Thread(target=work, args=(indexes,), daemon=True, name=f"headwater-alert-{name}")
            for name, indexes in by_notifier.items()
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(max(0.0, stop - time.monotonic()))
        for index, (alert, notifier) in enumerate(jobs):
            where = f"{notifier.name} ({notifier.type}) for {alert.asset_key}"
            if index not in results:
                self.errors.append(f"{where}: no answer within the {deadline:g} s alert deadline; not waited for")
            elif results[index] is None:
                self.sent.append((notifier.name, alert.asset_key))
            else:
                self.errors.append(f"{where}: {results[index]}")


def _expand(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    missing = [name for name in _VAR.findall(text) if not os.environ.get(name)]
    if missing:
        return None
    return _VAR.sub(lambda m: os.environ[m.group(1)], text)


def load_router(path: Path | None) -> AlertRouter:
    """The router described by ``path`` (no file: no alerts).

    Raises:
        AlertConfigError: unknown notifier type, a route naming an unknown notifier; all listed at once.
    """
    if path is None or not path.exists():
        return AlertRouter()
    from orchestration.settings import settings_document

    document = settings_document(path, "fix the file (its alerts: section routes the run's alerts)")
    section = document.get("alerts") or {}
    problems: list[str] = []
    notifiers: dict[str, Notifier] = {}
    for name, raw in sorted((section.get("notifiers") or {}).items()):
        kind = (raw or {}).get("type")
        if kind not in ("webhook", "slack", "pagerduty"):
            problems.append(f"notifier {name!r}: type must be webhook, slack or pagerduty, got {kind!r}")
            continue
        url = _expand(raw.get("url", PAGERDUTY_URL if kind == "pagerduty" else None))
        notifiers[name] = Notifier(name=name, type=kind, url=url, routing_key=_expand(raw.get("routing_key")))
    routes: list[Route] = []
    for index, raw in enumerate(section.get("routes") or []):
        notify: Sequence[str] = raw.get("notify") or []
        unknown = [n for n in notify if n not in notifiers]
        if unknown:
            problems.append(f"route {index + 1}: unknown notifier(s) {', '.join(unknown)}")
            continue
        routes.append(Route(notify=tuple(notify), owner=raw.get("owner"), tag=raw.get("tag")))
    if problems:
        raise AlertConfigError(f"{path}: " + "; ".join(problems))
    return AlertRouter(notifiers=notifiers, routes=routes)


def alerts_file(project_root: Path) -> Path:
    return Path(os.environ.get("HEADWATER_ALERTS_FILE") or project_root / "headwater.yml")
