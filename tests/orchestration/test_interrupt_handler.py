"""The signal handler of a run (orchestration/core/interrupts.py), in a fresh interpreter per case: a signal raises
Interrupted where the run is, but never inside a function that releases something (a connection's close): there it
waits until the release returns, so nothing leaks and no library logs the interruption as its own error."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`

SCRIPT = """
import os, signal, time, weakref
from orchestration.core import interrupts

done = []

def close():  # a release the signal arrives in
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep({hold})
    done.append("closed")

class Held:
    pass

def dropped():  # a weak-reference callback the signal arrives in: Python prints and drops what it raises
    held = Held()
    weakref.finalize(held, os.kill, os.getpid(), signal.SIGTERM)
    del held
    time.sleep(5)
    done.append("went on")

def work():
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
    done.append("worked on")

with interrupts.interruptible():
    try:
        {call}()
        time.sleep(5)
    except interrupts.Interrupted as exc:
        print(exc.name, exc.exit_code, done)
"""


def _run(call: str, hold: float) -> str:
    code = textwrap.dedent(SCRIPT).format(call=call, hold=hold)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Exception ignored" not in out.stderr, out.stderr
    return out.stdout.strip()


def test_a_signal_raises_where_the_run_is() -> None:
    assert _run("work", 0) == "SIGTERM 143 []"


def test_a_signal_inside_a_release_is_raised_after_it() -> None:
    assert _run("close", 0.5) == "SIGTERM 143 ['closed']"


def test_a_release_stuck_longer_than_the_grace_is_interrupted() -> None:
    assert _run("close", 30) == "SIGTERM 143 []"


def test_a_signal_inside_a_weak_reference_callback_is_raised_after_it() -> None:
    """Python drops what a weakref callback raises (CI: a SIGTERM in a WeakKeyDictionary's ``remove`` during GX):
    the interruption is raised once the callback returns, not lost and not reported twice."""
    assert _run("dropped", 0) == "SIGTERM 143 []"
