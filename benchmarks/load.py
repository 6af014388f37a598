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

``--server`` runs every Headwater process against one started Prefect server (production's set-up) instead of each
starting its own local one (the quickstart's: ~6.5 s per run, and the run waits until that server has recorded every
task run); before each rerun the benchmark waits, untimed, until the server has recorded the previous run (as a
schedule's next run finds it; ``engine.py`` reads task runs back between runs likewise). ``--reruns`` then times the state-aware reruns in the same process tree: an idle rerun (nothing changed: nothing
may be built) and a rerun after one edit to a staging model (exactly its downstream may be built: the nodes dbt ran,
from the run log, against what ``<model>+`` selects), each as a share of the full run, and prints
``idle_share <idle/full> idle_built <n> change_share <change/full> change_built <n>/<expected> exact <yes|no>``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
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


def built_keys(data: Path) -> set[str]:
    """The assets the last run recorded as built (status success), from the run log."""
    with sqlite3.connect(data / "run_log_dev.sqlite") as con:
        run_id = con.execute("select run_id from runs order by started_at desc limit 1").fetchone()[0]
        rows = con.execute("select asset_key from materializations where run_id = ? and status = 'success'", (run_id,))
        return {key for (key,) in rows}


_BUILT = ("model", "seed", "snapshot")
"""What a run builds (an exposure downstream is recorded, not built)."""


def _downstream(env: dict[str, str], model: str) -> set[str]:
    """The assets ``<model>+`` selects (``headwater assets --output json``, dbt's selection): what a change to
    ``model`` must rebuild."""
    command = [sys.executable, "-m", "orchestration.cli", "assets", "--output", "json", "-s", f"{model}+"]
    out = subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, text=True).stdout
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {line["asset_key"] for line in lines if "asset_key" in line and line["resource_type"] in _BUILT}


def settle(env: dict[str, str], log: Path, timeout: float = 300) -> int:
    """With a started server: wait (untimed) until it has recorded the run's task runs (their count is stable for
    3 s), as a schedule's next run would find it; the next run then does not share the CPU with that backlog."""
    import re
    from uuid import UUID

    api = env.get("PREFECT_API_URL")
    match = re.search(r"flow run ([0-9a-f-]{36})", log.read_text())
    if not api or not match:
        return -1
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flt = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(match.group(1))]))
    counts: list[int] = []
    deadline = time.monotonic() + timeout
    with SyncPrefectClient(api) as client:
        while time.monotonic() < deadline and not (len(counts) > 3 and len(set(counts[-4:])) == 1):
            response = client.request("POST", "/task_runs/count", json={"flow_runs": flt.model_dump(mode="json")})
            counts.append(int(response.json()))
            time.sleep(1)
    return counts[-1] if counts else -1


def reruns(project: Path, data: Path, env: dict[str, str], work: Path, full: float, model: str) -> None:
    """An idle rerun, then a rerun after one edit of ``model``: wall time as a share of the full run, what ran."""
    command = [sys.executable, "-m", "orchestration.cli", "materialize"]
    settle(env, work / "materialize.log")
    idle, _, code = timed(command, env, work / "idle.log")
    settle(env, work / "idle.log")
    idle_built = len(built_keys(data))
    print(f"idle rerun: exit {code}, {idle:.1f} s ({idle / full:.0%} of the full run), {idle_built} assets built")
    path = next((project / "dbt_project" / "models").rglob(f"{model}.sql"))
    path.write_text(path.read_text() + "\n-- edited by benchmarks/load.py --reruns\n")
    expected = _downstream(env, model)
    change, _, code = timed(command, env, work / "change.log")
    ran = built_keys(data)
    exact = "yes" if ran == expected else "no"
    print(
        f"one-change rerun ({model}): exit {code}, {change:.1f} s ({change / full:.0%} of the full run), "
        f"built {len(ran)} assets, {len(expected)} selected by {model}+"
    )
    if ran != expected:
        print(f"  built but not downstream: {sorted(ran - expected)[:10]}; not built: {sorted(expected - ran)[:10]}")
    print(
        f"idle_share {idle / full:.3f} idle_built {idle_built} change_share {change / full:.3f} "
        f"change_built {len(ran)}/{len(expected)} exact {exact}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=80.0, help="demo size: 80 gives ~1M order items")
    parser.add_argument("--no-baseline", action="store_true", help="skip the plain dbt build baseline")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--reruns", action="store_true", help="then time an idle rerun and a one-change rerun")
    parser.add_argument("--changed", default="stg_marketing__ad_spend", help="the staging model --reruns edits")
    parser.add_argument(
        "--server",
        action="store_true",
        help="every Headwater run talks to one started Prefect server (as in production) instead of starting its "
        "own local one (the quickstart's path)",
    )
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="headwater-load-"))
    server = None
    try:
        project = synthetic_project(work / "project", args.models)
        data = work / "data"
        env = _env(project, data)
        if args.server:
            from engine import start_server  # benchmarks/engine.py

            (data / "server").mkdir(parents=True)
            server, env["PREFECT_API_URL"] = start_server(data / "server")
            print(f"one started Prefect server for every Headwater run: {env['PREFECT_API_URL']}", flush=True)
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
        if args.reruns:  # before the baseline: nothing but Headwater has touched the warehouse yet
            reruns(project, data, env, work, wall, args.changed)
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
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
