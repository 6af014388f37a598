"""The load run, scaled for CI: one `headwater materialize` over the project plus 50 synthetic models.

The full run (1,000 models, ~1M ingested rows) is `benchmarks/load.py --models 1000 --scale 80`; its figures
are in the README. Here the same script runs small, and the test checks what it reports against the run log.
"""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_load_run_builds_every_synthetic_model_and_reports_time_and_memory(tmp_path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/load.py",
            "--models",
            "50",
            "--scale",
            "1",
            "--no-baseline",
            "--keep",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"ratio - models (\d+)/50 rows (\d+) wall_s ([\d.]+) peak_rss_mib (\d+)", last)
    assert match, last
    built, rows, _, peak = (float(g) for g in match.groups())
    assert built == 50, "every synthetic model was built"
    assert rows > 20_000, "the demo's raw tables were ingested in the same run"
    assert peak > 0
    log = (tmp_path / "materialize.log").read_text()
    assert "materialized on target dev" in log and "Traceback" not in log
