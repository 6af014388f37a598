"""Alert routing and payloads, delivered to a local HTTP receiver (Slack and PagerDuty cannot be reached here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.notify.alerts import Alert, AlertConfigError, load_router

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`

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


class _BadEndpoint:
    """A local endpoint that accepts and never answers (``hang``) or answers one byte every second (``drip``)."""

    def __init__(self, mode: str) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.mode, self.closed = mode, threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading
        import time

        def handle(conn) -> None:
            try:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000 if self.mode == "drip" else b"":
                    if self.closed.is_set():
                        break
                    conn.send(bytes([byte]))
                    time.sleep(1)
                self.closed.wait()
            except OSError:
                pass

        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


def test_slow_hanging_and_refusing_endpoints_cost_the_run_at_most_the_deadline(tmp_path: Path, receiver) -> None:
    """Local stand-ins for endpoints that misbehave: one drips a byte a second (a socket timeout never fires),
    one accepts and never answers, one refuses; with seven alerts each, the good endpoint still gets all seven and
    the whole dispatch ends at the deadline, naming what was not delivered."""
    import socket

    drip, hang = _BadEndpoint("drip"), _BadEndpoint("hang")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{probe.getsockname()[1]}"  # closed when the block ends: nothing listens
    router = load_router(
        write(
            tmp_path,
            f"""
alerts:
  notifiers:
    good: {{type: webhook, url: "{receiver.url}/good"}}
    drip: {{type: webhook, url: "{drip.url}"}}
    hang: {{type: slack, url: "{hang.url}"}}
    refused: {{type: webhook, url: "{refused}"}}
  routes:
    - {{notify: [good, drip, hang, refused]}}
""",
        )
    )
    alerts = [Alert(f"marts.m{i}", "dbt_model", "boom", 1, "r-1") for i in range(7)]
    router.dispatch(alerts, deadline=2.0)  # returns: the hanging and dripping receivers are given up on
    drip.close()
    hang.close()
    assert len(receiver.by_path("/good")) == 7
    assert sorted(n for n, _ in router.sent) == ["good"] * 7
    failed = {e.split(" ")[0] for e in router.errors}
    assert failed == {"drip", "hang", "refused"}, router.errors
    assert any("alert deadline" in e for e in router.errors if e.startswith(("drip", "hang")))
