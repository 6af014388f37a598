"""Send a signal to a real ``headwater materialize`` at a phase of its run, and say what is left afterwards.

A phase is seen from outside, by the files the run writes under its data folder (as ../shared/faults/interrupt.py
does): dlt's load packages (``ingest``), GX validation results of raw tables (``gxraw``) and of marts (``gxmarts``),
dbt's compiled SQL (``dbt``), a mart's suite as GX starts it (``gxmarts_start``), the Data Docs built while the run is
recorded (``recording``).
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import start_cli

PHASES = {
    "ingest": ["dlt_pipelines/*/normalize/extracted/*", "dlt_pipelines/*/load/new/*", "dlt_pipelines/*/load/normalized/*"],
    "gxraw": ["gx/uncommitted/validations/raw_*/**"],
    "dbt": ["dbt_target/run/**"],
    "gxmarts": ["gx/uncommitted/validations/marts*/**"],
    "gxmarts_start": ["gx/expectations/marts/*.json"],  # GX writes a mart's suite as it starts validating it
    "recording": ["gx/uncommitted/data_docs/**"],  # Data Docs are built while the run is recorded
    "gx": ["gx/expectations/**/*.json"],  # any suite as GX starts it
}  # fmt: skip


def _snapshot(data: Path, phase: str) -> dict[str, float]:
    found = {}
    for pattern in PHASES[phase]:
        for name in glob.glob(str(data / pattern), recursive=True):
            try:
                found[name] = os.stat(name).st_mtime
            except FileNotFoundError:
                pass
    return found


@dataclass
class Stopped:
    returncode: int
    output: str
    seconds_to_exit: float
    leftovers: list[str]
    """Live processes (not zombies) left in the run's session after it exited."""


def interrupt_at(
    args: list[str], env: dict[str, str], phase: str, signum: int, *, twice: bool = False, or_end: bool = False
) -> Stopped:
    """Start ``headwater ARGS``; when ``phase`` shows, send ``signum`` (SIGINT to the process group, as a terminal's
    Ctrl-C does; others to the CLI alone); ``twice`` sends a second one 0.3 s later. ``or_end``: a run that ends before
    the phase shows (it had nothing of that phase to do) is returned as it ended, no signal sent."""
    data = Path(env["HEADWATER_DATA_DIR"])
    before = _snapshot(data, phase)
    proc = start_cli(args, env)
    deadline = time.monotonic() + 300
    while proc.poll() is None:
        now = _snapshot(data, phase)
        if any(before.get(name) != mtime for name, mtime in now.items()):
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"phase {phase} never showed within 300 s")
        time.sleep(0.02)
    else:
        output = proc.stdout.read() if proc.stdout else ""
        if or_end:
            return Stopped(proc.returncode, output, 0.0, [])
        raise AssertionError(f"the run ended (rc={proc.returncode}) before phase {phase} showed:\n{output}")

    def send() -> None:
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signum)

    send()
    sent = time.monotonic()
    if twice:
        time.sleep(0.3)
        sent = time.monotonic()
        send()
    try:
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGUSR1)  # the CLI prints every thread's stack: where it is stuck
        time.sleep(2)
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise AssertionError(f"still running 120 s after the signal:\n{output[-12000:]}") from None
    took = time.monotonic() - sent
    time.sleep(0.5)
    listing = subprocess.run(
        ["ps", "-o", "pid=,stat=,cmd=", "-s", str(proc.pid)], capture_output=True, text=True
    ).stdout.splitlines()
    live = [line.strip() for line in listing if line.split()[1:2] and not line.split()[1].startswith("Z")]
    return Stopped(proc.returncode, output, took, live)


def servers_of(home: Path) -> list[str]:
    """``prefect server start`` processes whose environment points at ``home`` (left behind by a run)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if "prefect server start" in cmd and f"PREFECT_HOME={home}".encode() in environ:
            found.append(f"{pid} {cmd}")
    return found
