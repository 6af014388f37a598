"""Load run: one `headwater materialize` over Headwater's project plus N synthetic models, on ~1M ingested rows.

    uv run python benchmarks/load.py --models 1000 --scale 80 [--no-baseline]

Copies the project (dbt_project/, profiles/, quality/, headwater.yml) into a scratch folder and adds
``models/synthetic/``: a layered graph whose first layer aggregates ``stg_shop__order_items`` (the ingested
rows) and whose every later model joins 1-3 models of the layer before (all tables, so every model does
work). Creates the demo shop at ``--scale`` (80 gives ~1M order items; not timed), then times one whole
``headwater materialize`` process: dlt ingestion of every raw table, every dbt node with its task run, the
checks. Then, as the baseline in
the same run, plain ``dbt build`` of the same project on the same warehouse. The last line is exactly
``ratio <headwater/dbt> models <built>/<N> rows <ingested> wall_s <s> peak_rss_mib <MiB>`` (ratio ``-`` without a
baseline). Peak memory is the Headwater process's own (the ephemeral Prefect server runs in a child process).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def synthetic_project(root: Path, models: int, seed: int = 11) -> Path:
    """A copy of Headwater's project with ``models`` synthetic models under models/synthetic/."""
    for name in ("dbt_project", "profiles", "quality"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("target", "dbt_packages", "logs"))
    shutil.copy(REPO / "headwater.yml", root / "headwater.yml")
    folder = root / "dbt_project" / "models" / "synthetic"
    folder.mkdir()
    rng = random.Random(seed)
    width = max(5, int(models**0.5) * 2)
    layers: list[list[str]] = []
    count = 0
    while count < models:
        layer = []
        for _ in range(min(width, models - count)):
            name = f"syn_{count:05d}"
            if not layers:
                sql = (
                    "select product_id as id, sum(line_amount) as value, count(*) as n\n"
                    "from {{ ref('stg_shop__order_items') }}\n"
                    f"where order_item_id % {width} = {count}\ngroup by product_id"
                )
            else:
                parents = rng.sample(layers[-1], k=min(len(layers[-1]), rng.randint(1, 3)))
                first, *others = parents
                joins = "".join(
                    f"\nleft join {{{{ ref('{p}') }}}} as p{i} on p{i}.id = p0.id" for i, p in enumerate(others, 1)
                )
                total = " + ".join(["p0.value", *(f"coalesce(p{i}.value, 0)" for i in range(1, len(parents)))])
                sql = f"select p0.id, {total} as value, p0.n\nfrom {{{{ ref('{first}') }}}} as p0{joins}"
            (folder / f"{name}.sql").write_text(sql + "\n")
            layer.append(name)
            count += 1
        layers.append(layer)
    project_yml = root / "dbt_project" / "dbt_project.yml"
    project_yml.write_text(
        project_yml.read_text().replace(
            "    marts:\n", "    synthetic:\n      +schema: synthetic\n      +materialized: table\n    marts:\n", 1
        )
    )
    return root


def _env(project: Path, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "PREFECT_"))}
    env.update(
        HEADWATER_PROJECT_DIR=str(project),
        HEADWATER_DATA_DIR=str(data),
        PREFECT_HOME=str(data / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        RUNTIME__DLTHUB_TELEMETRY="false",
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        COLUMNS="200",
    )
    return env


def timed(command: list[str], env: dict[str, str], log: Path) -> tuple[float, float, int]:
    """Run ``command``; returns wall seconds, its peak RSS in MiB and its exit code."""
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def ingested_rows(log: Path) -> int:
    """Rows the run ingested, from its summary's ingestion table (``│ source │ raw_x.table │ rows │``)."""
    total = 0
    for line in log.read_text().splitlines():
        match = re.match(r"\W+\w+\s+\W\s+(raw_\w+\.\w+)\s+\W\s+([\d,]+)\s+\W", line)
        if match:
            total += int(match.group(2).replace(",", ""))
    return total


def built(data: Path, prefix: str) -> int:
    """Assets whose key starts with ``prefix`` that the last run recorded as built, from the run log."""
    with sqlite3.connect(data / "run_log_dev.sqlite") as con:
        run_id = con.execute("select run_id from runs order by started_at desc limit 1").fetchone()[0]
        return con.execute(
            "select count(*) from materializations where run_id = ? and asset_key like ? and status = 'success'",
            (run_id, f"{prefix}%"),
        ).fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=80.0, help="demo size: 80 gives ~1M order items")
    parser.add_argument("--no-baseline", action="store_true", help="skip the plain dbt build baseline")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="headwater-load-"))
    try:
        project = synthetic_project(work / "project", args.models)
        data = work / "data"
        env = _env(project, data)
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "orchestration.cli", "demo", "--scale", str(args.scale)],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
        )
        print(f"demo shop at scale {args.scale}: {time.monotonic() - started:.0f} s (not timed)", flush=True)
        log = work / "materialize.log"
        wall, peak, code = timed([sys.executable, "-m", "orchestration.cli", "materialize"], env, log)
        rows = ingested_rows(log)
        synthetic = built(data, "synthetic.")
        print(
            f"headwater materialize: exit {code}, {wall:.1f} s, peak RSS {peak:.0f} MiB, {rows:,} rows ingested, "
            f"{synthetic} of {args.models} synthetic models built"
        )
        if code not in (0, 1):  # 1: the demo's own checks may fail at some scales; the run itself finished
            print(log.read_text()[-4000:])
            raise SystemExit(f"the load run crashed (exit {code}); log: {log}")
        ratio = "-"
        if not args.no_baseline:
            dbt_env = {**env, "HEADWATER_DUCKDB_PATH": str(data / "headwater.duckdb")}
            command = [sys.executable, "-m", "dbt.cli.main", "build", "--project-dir", str(project / "dbt_project"),
                       "--profiles-dir", str(project / "profiles"), "--target-path", str(work / "dbt_target"),
                       "--log-path", str(work)]  # fmt: skip
            base_wall, base_peak, base_code = timed(command, dbt_env, work / "dbt.log")
            print(f"plain dbt build (baseline): exit {base_code}, {base_wall:.1f} s, peak RSS {base_peak:.0f} MiB")
            ratio = f"{wall / base_wall:.2f}"
        print(f"ratio {ratio} models {synthetic}/{args.models} rows {rows} wall_s {wall:.1f} peak_rss_mib {peak:.0f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
