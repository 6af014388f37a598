"""Engine benchmark: Headwater's materialize against plain `dbt build` and prefect-dbt, side by side.

    uv run python benchmarks/engine.py [--models 200 1000] [--pairs 3] [--threads 4] [--skip-per-node]

For each size, generates a layered synthetic dbt project on DuckDB (every model with a not_null test); one Prefect
server serves all sizes. Alternating pairs of whole processes: plain ``dbt build --threads T`` and ``headwater
materialize`` of the same nodes. After each Headwater run, outside the timed part: the Prefect server's CPU for
that run once it has gone quiet (its whole cost: events, logs, API calls; per task run), and every task run read back
(sorted and paged) with its start, end, final state and, but for the first layer, its upstream edges. Then, at the
smallest size (``--peers-at``), the peers once each (at the same Prefect log level; dbt events at WARN, since
prefect-dbt turns PREFECT_LOGGING_LEVEL=WARNING into dbt's invalid level "warning"): prefect-dbt's
``PrefectDbtRunner`` (one build, mirrored task runs) and ``PrefectDbtOrchestrator`` in PER_NODE mode with
concurrency 1 (more fails on DuckDB's single-writer lock). The last lines are exactly, one per size,
``ratio <headwater/dbt median> peer <fastest prefect-dbt peer/headwater> models <N> server_ms_per_task_run <ms>
read_back <whole>/<task runs> peak_rss_ratio <headwater/dbt median peak RSS>`` (each process's own ``ru_maxrss``;
the Prefect server is a process of its own).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def generate_project(root: Path, models: int, threads: int, seed: int = 7) -> int:
    """A layered project: ~sqrt(N) layers, each model reads 1-3 models of the layer before it. Returns the number
    of models in the first layer (the only nodes whose task runs have no upstream edge)."""
    rng = random.Random(seed)
    width = max(5, int(models**0.5) * 2)
    (root / "models").mkdir(parents=True)
    names: list[list[str]] = []
    count = 0
    while count < models:
        layer = []
        for _ in range(min(width, models - count)):
            name = f"m{count:05d}"
            if not names:
                sql = f"select range as id, range * {count + 1} as value from range(100)"
            else:
                parents = rng.sample(names[-1], k=min(len(names[-1]), rng.randint(1, 3)))
                union = "\nunion all\n".join(f"select id, value from {{{{ ref('{p}') }}}}" for p in parents)
                sql = f"select id, sum(value) as value from (\n{union}\n) group by id"
            (root / "models" / f"{name}.sql").write_text(sql + "\n")
            layer.append(name)
            count += 1
        names.append(layer)
    tests = [{"name": n, "columns": [{"name": "id", "data_tests": ["not_null"]}]} for layer in names for n in layer]
    (root / "models" / "schema.yml").write_text(json.dumps({"version": 2, "models": tests}, indent=1))
    (root / "dbt_project.yml").write_text(
        textwrap.dedent(
            """\
            name: bench
            version: "1.0.0"
            profile: bench
            models:
              bench:
                +materialized: table
            """
        )
    )
    (root / "profiles.yml").write_text(
        textwrap.dedent(
            f"""\
            bench:
              target: local
              outputs:
                local:
                  type: duckdb
                  path: "{{{{ env_var('BENCH_DUCKDB_PATH') }}}}"
                  threads: {threads}
            """
        )
    )
    return len(names[0])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(home: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
    )
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=(home / "server.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    raise RuntimeError("prefect server did not start")


def timed(
    cmd: list[str], env: dict[str, str], cwd: Path, timeout: float
) -> tuple[float, subprocess.CompletedProcess, float]:
    """Run ``cmd``: wall seconds, the finished process (output captured) and its peak RSS in MiB (its own
    ``ru_maxrss``, from ``wait4``; a Prefect server it talks to is another process)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err, text=True, start_new_session=True)
        timer = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        if seconds >= timeout:
            raise subprocess.TimeoutExpired(cmd, timeout)
        out.seek(0)
        err.seek(0)
        return (
            seconds,
            subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read()),
            usage.ru_maxrss / 1024,
        )


def server_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the processes of the Prefect server's process group."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ... utime (11), stime (12)
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def settled_cpu(pgid: int, quiet: float = 0.05) -> tuple[float, float, float]:
    """The server's CPU once it has gone quiet (under ``quiet`` CPU seconds in one wall second: its backlog of
    events and logs is recorded), the monotonic time then, and its idle rate (CPU seconds per second over the next
    3 s: its periodic services), to subtract from a run's share."""
    last = server_cpu(pgid)
    for _ in range(120):
        time.sleep(1)
        now = server_cpu(pgid)
        if now - last < quiet:
            break
        last = now
    at = time.monotonic()
    time.sleep(3)
    return now, at, (server_cpu(pgid) - now) / 3


def verify_task_runs(api: str, output: str, expected_edges: int) -> tuple[int, int]:
    """Every task run of the flow run read back (sorted, paged): how many have a start, an end and a final state, and
    how many of those have at least one upstream edge (``wait_for``)."""
    import re
    from uuid import UUID

    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    match = re.search(r"flow run ([0-9a-f-]{36})", output)
    if not match:
        return -1, -1
    flt = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(match.group(1))]))
    runs = []
    with SyncPrefectClient(api) as client:
        while True:
            page = client.read_task_runs(
                flow_run_filter=flt, sort=TaskRunSort.EXPECTED_START_TIME_ASC, limit=200, offset=len(runs)
            )
            runs.extend(page)
            if len(page) < 200:
                break
    whole = [r for r in runs if r.start_time and r.end_time and r.state_type and r.state_type.value == "COMPLETED"]
    return len(whole), sum(1 for r in whole if r.task_inputs.get("wait_for"))


def count_task_runs(api: str, output: str, expected: int, timeout: float = 300) -> int:
    """Wait for the server's backlog, then count the flow run's task runs."""
    import re
    from uuid import UUID

    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    match = re.search(r"flow run ([0-9a-f-]{36})", output)
    if not match:
        return -1
    flt = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(match.group(1))]))
    deadline = time.monotonic() + timeout
    count = -1
    with SyncPrefectClient(api) as client:
        while time.monotonic() < deadline:
            response = client.request("POST", "/task_runs/count", json={"flow_runs": flt.model_dump(mode="json")})
            count = int(response.json())
            if count >= expected:
                return count
            time.sleep(1)
    return count


PEER_RUNNER = """
import sys
from prefect import flow
from dbt_common.events.base_types import EventLevel
from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings
project, threads = sys.argv[1], sys.argv[2]
@flow(name="peer-prefect-dbt-runner")
def run():
    settings = PrefectDbtSettings(
        project_dir=project, profiles_dir=project, target_path=project + "/target_runner", log_level=EventLevel.WARN
    )
    PrefectDbtRunner(settings=settings, raise_on_failure=False).invoke(["build", "--threads", threads])
run()
"""

PEER_ORCHESTRATOR = """
import sys
from prefect import flow
from dbt_common.events.base_types import EventLevel
from prefect_dbt import PrefectDbtSettings
from prefect_dbt.core._orchestrator import ExecutionMode, PrefectDbtOrchestrator
project = sys.argv[1]
@flow(name="peer-prefect-dbt-orchestrator")
def run():
    settings = PrefectDbtSettings(
        project_dir=project, profiles_dir=project, target_path=project + "/target_orch", log_level=EventLevel.WARN
    )
    PrefectDbtOrchestrator(
        settings=settings, execution_mode=ExecutionMode.PER_NODE, concurrency=1, raise_on_failure=False,
        create_summary_artifact=False,
    ).run_build()
run()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, nargs="+", default=[200, 1000], help="one or more project sizes")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--peer-timeout", type=float, default=3600, help="seconds before a peer run is abandoned")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument(
        "--skip-per-node", action="store_true", help="run only the PrefectDbtRunner peer (PER_NODE takes ~1 s per node)"
    )
    parser.add_argument(
        "--peers-at", type=int, nargs="*", default=None, help="sizes the peers run at (default: the smallest)"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="headwater-bench-"))
    (work / "prefect").mkdir()
    server, api = start_server(work / "prefect")
    lines = []
    try:
        for models in args.models:
            peers = not args.skip_peers and models in (args.peers_at or [min(args.models)])
            lines.append(bench_size(work / f"n{models}", api, server.pid, models, args, peers))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))


def bench_size(work: Path, api: str, server_pgid: int, models: int, args: argparse.Namespace, peers: bool) -> str:
    """Pairs of plain dbt and Headwater at ``models`` models (and the peers when ``peers``); the summary line."""
    project = work / "project"
    first_layer = generate_project(project, models, args.threads)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HEADWATER_"))}
    env.update(
        PREFECT_API_URL=api,
        PREFECT_HOME=str(work.parent / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        BENCH_DUCKDB_PATH=str(work / "bench.duckdb"),
        HEADWATER_DATA_DIR=str(work / "data"),
        HEADWATER_PROJECT_DIR=str(REPO),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    nodes = 2 * models
    # Plain `dbt build` as a user types it: dbt's default console and file logging.
    dbt_cmd = [
        str(BIN / "dbt"),
        "build",
        "--threads",
        str(args.threads),
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(project / "target_dbt"),
    ]
    # --all: every pair compares whole builds (state-aware, a rerun of an unchanged project builds nothing)
    hw_cmd = [
        str(BIN / "headwater"),
        "materialize",
        "--all",
        "--dbt-project",
        str(project),
        "--profiles-dir",
        str(project),
    ]
    print(f"project: {models} models + {models} tests in {project}; prefect server {api}", flush=True)
    for label, cmd in (("warm-up dbt", dbt_cmd), ("warm-up headwater", hw_cmd)):
        seconds, proc, _ = timed(cmd, env, work, 3600)
        if proc.returncode != 0:
            raise SystemExit(f"{label} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        print(f"{label:22s} {seconds:8.2f} s", flush=True)
    dbt_times, hw_times, cpu_per_run, read_back, dbt_peaks, hw_peaks = [], [], [], [], [], []
    for pair in range(args.pairs):
        d, dp, dbt_peak = timed(dbt_cmd, env, work, 3600)
        before, since, idle = settled_cpu(server_pgid)
        h, hp, hw_peak = timed(hw_cmd, env, work, 3600)
        if dp.returncode or hp.returncode:
            raise SystemExit(f"pair {pair + 1} failed:\n{dp.stdout[-2000:]}\n{hp.stdout[-2000:]}")
        recorded = count_task_runs(api, hp.stdout, nodes)
        after, until, _ = settled_cpu(server_pgid)
        cpu = after - before - idle * (until - since)  # the run's whole cost to the server: events, logs, API calls
        whole, with_edges = verify_task_runs(api, hp.stdout, nodes - first_layer)
        dbt_times.append(d)
        hw_times.append(h)
        dbt_peaks.append(dbt_peak)
        hw_peaks.append(hw_peak)
        cpu_per_run.append(cpu * 1000 / nodes)
        read_back.append(f"{whole}/{nodes} whole, {with_edges}/{nodes - first_layer} with their edges")
        print(
            f"pair {pair + 1}: dbt build {d:8.2f} s   headwater {h:8.2f} s   task runs {recorded}/{nodes} "
            f"({read_back[-1]})   server CPU {cpu:.2f} s = {cpu_per_run[-1]:.1f} ms per task run   "
            f"peak RSS dbt {dbt_peak:.0f} MiB, headwater {hw_peak:.0f} MiB",
            flush=True,
        )
    dbt_median, hw_median = statistics.median(dbt_times), statistics.median(hw_times)
    print(f"median: dbt build {dbt_median:.2f} s, headwater {hw_median:.2f} s", flush=True)
    dbt_peak, hw_peak = statistics.median(dbt_peaks), statistics.median(hw_peaks)
    print(f"median peak RSS: dbt build {dbt_peak:.0f} MiB, headwater {hw_peak:.0f} MiB ({hw_peak / dbt_peak:.2f}x)")
    peer_times = run_peers(project, env, work, args, hw_median, nodes) if peers else {}
    peer = min(peer_times.values()) / hw_median if peer_times else float("nan")
    return (
        f"ratio {hw_median / dbt_median:.3f} peer {peer:.2f} models {models} "
        f"server_ms_per_task_run {statistics.median(cpu_per_run):.1f} read_back {read_back[-1].split(' ')[0]} "
        f"peak_rss_ratio {hw_peak / dbt_peak:.2f}"
    )


def run_peers(
    project: Path, env: dict[str, str], work: Path, args: argparse.Namespace, hw_median: float, nodes: int
) -> dict[str, float]:
    """prefect-dbt's runner and PER_NODE orchestrator once each; their times where dbt's work was done."""
    peer_times = {}
    for name, script, extra in (
        ("prefect-dbt PrefectDbtRunner", PEER_RUNNER, [str(args.threads)]),
        ("prefect-dbt PER_NODE (concurrency 1)", PEER_ORCHESTRATOR, []),
    ):
        if args.skip_per_node and script is PEER_ORCHESTRATOR:
            print(f"{name:38s} skipped (--skip-per-node)")
            continue
        try:
            seconds, proc, _ = timed([sys.executable, "-c", script, str(project), *extra], env, work, args.peer_timeout)
        except subprocess.TimeoutExpired:
            print(f"{name:38s} abandoned after {args.peer_timeout:.0f} s")
            continue
        completed = proc.returncode == 0 or "Finished in state Completed()" in proc.stdout + proc.stderr
        ok = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        if proc.returncode != 0 and completed:
            remaining = [line for line in (proc.stdout + proc.stderr).splitlines() if "items remaining" in line]
            ok += ", after its flow run completed" + (f" ({remaining[-1].split(' - ')[-1]})" if remaining else "")
        # prefect-dbt's runner can abort at interpreter shutdown ("can't register atexit after
        # shutdown") after dbt finished: its run_results.json then shows whether the build was done.
        results = project / "target_runner" / "run_results.json"
        built = completed or (
            script is PEER_RUNNER
            and results.exists()
            and results.stat().st_mtime > time.time() - seconds
            and len(json.loads(results.read_text()).get("results", [])) == nodes
        )
        print(f"{name:38s} {seconds:8.2f} s ({ok}; {seconds / hw_median:.2f}x headwater)", flush=True)
        if not completed:
            print("  " + "\n  ".join(proc.stderr.strip().splitlines()[-3:]))
        if built:  # dbt's work was done even if the process then crashed: its time still counts
            peer_times[name] = seconds
    return peer_times


if __name__ == "__main__":
    main()
