"""Prefect's API for one CLI run when no ``PREFECT_API_URL`` is set: what Prefect's ephemeral mode does, made safe.

Prefect's ephemeral server is a child in the CLI's process group: a Ctrl-C in the terminal reaches it first, the run
then cannot record anything, and a SIGTERM or kill -9 of the CLI leaves it running. Headwater starts the same API
itself (``prefect server start``, a public command) in its own session, so the terminal's Ctrl-C reaches only the
run; with a parent-death signal, so it never outlives the CLI (kill -9 included); and stops it only once the run's
records are in. It starts while the CLI imports and parses, so its start-up overlaps the run's own.

``headwater server`` starts the same API once, in the background, for every command after it (:func:`start_server`):
its address is kept in the data folder, and a command that finds it answering uses it instead of starting its own
(no ~6.5 s start, no wait for records before exiting: the server outlives the command and records them).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the kernel sends SIGTERM to this child when the CLI dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalServer:
    """A ``prefect server start`` child of this process; ``api_url`` is valid from :meth:`start` on."""

    def __init__(self, log_path: Path) -> None:
        self.port = _free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalServer:
        """Start the server (returns at once; :meth:`wait` blocks until it answers)."""
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update(PREFECT_UI_ENABLED="false", PREFECT_SERVER_ANALYTICS_ENABLED="false")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the terminal's Ctrl-C goes to the run, not to its API
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        return self

    def wait(self, timeout: float = 120.0) -> None:
        """Block until the API answers.

        Raises:
            RuntimeError: the server exited or did not answer within ``timeout``; the message names its log.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the local Prefect server exited at start; its log: {self.log_path}")
            if _answers(self.api_url, timeout=2):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the local Prefect server did not answer within {timeout:.0f} s; its log: {self.log_path}")

    def kill(self) -> None:
        """Stop the server now, without waiting (a second Ctrl-C)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and its session (SIGTERM, then SIGKILL after ``timeout``)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)


# -- the local server that outlives one run: `headwater server` ---------------------------------------------------

SERVER_FILE = "prefect_server.json"
"""In the data folder: the address and process of the server ``headwater server`` started."""


def _answers(api_url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def running_server(data_dir: Path) -> dict[str, Any] | None:
    """The server ``headwater server`` started for this data folder, when it answers (one quick request); else None."""
    try:
        info = json.loads((data_dir / SERVER_FILE).read_text())
        api_url = str(info["api_url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if _answers(api_url) else None


def start_server(data_dir: Path, port: int | None = None, timeout: float = 120.0) -> tuple[dict[str, Any], bool]:
    """Start Prefect's server in the background on loopback, in its own session (it outlives this process), unless
    one started for ``data_dir`` answers already. Returns its record and whether it was started now.

    Raises:
        RuntimeError: it exited or did not answer within ``timeout``; the message names its log.
    """
    found = running_server(data_dir)
    if found is not None:
        return found, False
    port = port or (4200 if _port_free(4200) else _free_port())
    log_path = data_dir / "prefect_server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no terminal signal reaches it; it is stopped by `headwater server --stop`
        )
    api_url = f"http://127.0.0.1:{port}/api"
    info: dict[str, Any] = {"pid": process.pid, "port": port, "api_url": api_url, "log": str(log_path)}
    deadline = time.monotonic() + timeout
    while not _answers(api_url, timeout=2):
        if process.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            raise RuntimeError(f"the Prefect server did not start on port {port}; its log: {log_path}")
        time.sleep(0.2)
    (data_dir / SERVER_FILE).write_text(json.dumps(info))
    return info, True


def stop_server(data_dir: Path, timeout: float = 30.0) -> dict[str, Any] | None:
    """Stop the server ``headwater server`` started for ``data_dir`` (SIGTERM to its session: it records what it has
    queued first; SIGKILL after ``timeout``). Returns its record, or None when there was none."""
    path = data_dir / SERVER_FILE
    try:
        info = json.loads(path.read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            os.killpg(pid, 0)  # raises ProcessLookupError once the session is gone
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return info


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
