"""CLI latency benchmark: every command that only reads, as a whole process, beside `dbt ls` and `dbt --version`.

    uv run python benchmarks/cli.py [--runs 5] [--data-dir data]

Over the demo project in ``--data-dir`` (default ``data/bench_cli``, its own folder: materialized first when it holds
no warehouse yet; the deployed state is saved there first, so ``plan`` times the case where nothing changed). Each command runs once untimed (dbt's partial parse, Headwater's graph cache and
compile cache are warm, as on a developer's machine between edits), then ``--runs`` times; the median is printed with
its ratio to ``dbt ls`` and to ``dbt --version`` measured in the same run. The last line is exactly
``assets <s> status <s> checks <s> lineage <s> plan <s> dbt_ls <s> dbt_version <s> worst_ratio_to_dbt_ls <r>``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HEADWATER = [sys.executable, "-m", "orchestration.cli"]
COMMANDS = {
    "assets": [*HEADWATER, "assets"],
    "status": [*HEADWATER, "status"],
    "checks": [*HEADWATER, "checks"],
    "lineage": [*HEADWATER, "lineage", "marts.orders.order_amount"],
    "plan": [*HEADWATER, "plan"],
}


def _run(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def _median(command: list[str], env: dict[str, str], runs: int) -> float:
    _run(command, env)  # warm: partial parse, graph and compile caches, the OS page cache
    return statistics.median(_run(command, env) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=REPO / "data" / "bench_cli")
    args = parser.parse_args()
    data = args.data_dir.resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update(HEADWATER_DATA_DIR=str(data), HEADWATER_PROJECT_DIR=str(REPO), COLUMNS="120")
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    if not (data / "headwater.duckdb").exists():
        print(f"materializing the demo into {data} first (not timed)", flush=True)
        subprocess.run([*HEADWATER, "materialize"], cwd=REPO, env=env, check=True, capture_output=True)
    subprocess.run([*HEADWATER, "plan", "--save"], cwd=REPO, env=env, check=True, capture_output=True)

    dbt = str(BIN / "dbt")
    # dbt renders the demo's profile with the variables Headwater sets for it (the DuckDB file of this data folder)
    dbt_env = {**env, "HEADWATER_DUCKDB_PATH": str(data / "headwater.duckdb"), "HEADWATER_TARGET": "dev"}
    target = ["--project-dir", str(REPO / "dbt_project"), "--profiles-dir", str(REPO / "profiles")]
    baseline = {
        "dbt ls": _median(
            [dbt, "ls", "-q", *target, "--target-path", str(data / "bench_dbt_target")], dbt_env, args.runs
        ),
        "dbt --version": _median([dbt, "--version"], dbt_env, args.runs),
    }
    results = {name: _median(command, env, args.runs) for name, command in COMMANDS.items()}

    print(f"median of {args.runs} whole processes each (after one warm-up run), {os.cpu_count()} cores")
    print(f"{'command':<16}{'seconds':>9}{'/ dbt ls':>10}{'/ dbt --version':>17}")
    for name, seconds in {**{f"headwater {n}": s for n, s in results.items()}, **baseline}.items():
        print(
            f"{name:<16}{seconds:>9.2f}{seconds / baseline['dbt ls']:>10.2f}{seconds / baseline['dbt --version']:>17.2f}"
        )
    worst = max(results[n] for n in ("assets", "status", "checks")) / baseline["dbt ls"]
    print(
        " ".join(f"{name} {seconds:.2f}" for name, seconds in results.items())
        + f" dbt_ls {baseline['dbt ls']:.2f} dbt_version {baseline['dbt --version']:.2f}"
        + f" worst_ratio_to_dbt_ls {worst:.2f}"
    )


if __name__ == "__main__":
    main()
