"""Graph benchmark: manifest load -> asset graph -> flow plan for a large synthetic dbt manifest.

    uv run python benchmarks/graph.py --nodes 10000

Budget (ARCHITECTURE.md): under 2 s and under 1 GiB peak for 9,000+ nodes. Imports are not timed; the
manifest is written to disk first and read back by ``load_manifest``, as a run does. Baseline printed
alongside: ``json.load`` of the same file. The last line is ``seconds <s> peak_mib <m> nodes <n>``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path

from assets import load_manifest, select
from orchestration.engine.plan import asset_graph, plan_run
from orchestration.engine.tasks import mirrored_tasks, node_policies


def synthetic_manifest(nodes: int, seed: int = 3) -> dict:
    """~45% models, ~45% tests (one per model), ~10% sources, in layers of a few hundred."""
    rng = random.Random(seed)
    n_sources = max(1, nodes // 10)
    n_models = (nodes - n_sources) // 2
    n_tests = nodes - n_sources - n_models
    manifest: dict = {"metadata": {"dbt_version": "1.11"}, "nodes": {}, "sources": {}, "exposures": {}}
    sources = []
    for i in range(n_sources):
        uid = f"source.big.raw.t{i}"
        manifest["sources"][uid] = {
            "unique_id": uid,
            "resource_type": "source",
            "name": f"t{i}",
            "source_name": "raw",
            "schema": "raw",
            "identifier": f"t{i}",
            "fqn": ["big", "raw", f"t{i}"],
            "package_name": "big",
            "original_file_path": "models/sources.yml",
            "depends_on": {"nodes": []},
            "tags": [],
            "meta": {},
            "config": {},
        }
        sources.append(uid)
    previous = sources
    layer: list[str] = []
    models = []
    for i in range(n_models):
        uid = f"model.big.m{i}"
        deps = rng.sample(previous, k=min(len(previous), rng.randint(1, 3)))
        group = ("staging", "intermediate", "marts")[min(2, i * 3 // n_models)]
        manifest["nodes"][uid] = {
            "unique_id": uid,
            "resource_type": "model",
            "name": f"m{i}",
            "schema": group,
            "alias": f"m{i}",
            "fqn": ["big", group, f"m{i}"],
            "package_name": "big",
            "original_file_path": f"models/{group}/m{i}.sql",
            "depends_on": {"nodes": deps},
            "tags": [rng.choice(["a", "b", "c"])],
            "config": {"materialized": "table", "meta": {"headwater": {"retries": i % 3}}},
            "meta": {},
            "checksum": {"name": "sha256", "checksum": f"{i:064x}"},
            "description": f"model {i}",
        }
        layer.append(uid)
        models.append(uid)
        if len(layer) >= 300:
            previous, layer = layer, []
    for i in range(n_tests):
        model = models[i % len(models)]
        uid = f"test.big.not_null_m{i}_id.{i:010x}"
        manifest["nodes"][uid] = {
            "unique_id": uid,
            "resource_type": "test",
            "name": f"not_null_m{i}_id",
            "schema": "tests",
            "alias": f"t{i}",
            "fqn": ["big", "not_null", f"m{i}"],
            "package_name": "big",
            "original_file_path": "models/schema.yml",
            "depends_on": {"nodes": [model]},
            "attached_node": model,
            "tags": [],
            "meta": {},
            "config": {"severity": "ERROR" if i % 5 else "warn"},
        }
    child_map: dict[str, list[str]] = {uid: [] for uid in [*manifest["nodes"], *manifest["sources"]]}
    for uid, node in manifest["nodes"].items():
        for dep in node["depends_on"]["nodes"]:
            child_map[dep].append(uid)
    manifest["child_map"] = child_map
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    args = parser.parse_args()
    manifest = synthetic_manifest(args.nodes)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifest.json"
        path.write_text(json.dumps(manifest))
        del manifest
        start = time.perf_counter()
        json.loads(path.read_text())
        baseline = time.perf_counter() - start
        start = time.perf_counter()
        loaded = load_manifest(path)
        loaded_at = time.perf_counter()
        graph = asset_graph(loaded, {"retries": 1}, with_ingestion=False)
        graph_at = time.perf_counter()
        plan = plan_run(graph, None)
        tasks = mirrored_tasks(plan)
        policies = node_policies(plan, loaded, None)
        selected = select(graph, "tag:a+ staging.*,config.materialized:table")
        seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    nodes = len(graph.specs) + len(graph.checks)
    print(f"json.load baseline : {baseline:6.3f} s")
    print(f"load_manifest      : {loaded_at - start:6.3f} s")
    print(f"asset graph        : {graph_at - loaded_at:6.3f} s ({len(graph.specs)} assets, {len(graph.checks)} checks)")
    print(
        f"plan + task specs  : {seconds - (graph_at - start):6.3f} s ({len(tasks)} tasks, {len(policies)} policies, "
        f"a selection of {len(selected)})"
    )
    print(f"total {seconds:.3f} s = {seconds / baseline:.1f}x json.load; peak RSS {peak_mib:.0f} MiB")
    print(f"seconds {seconds:.3f} peak_mib {peak_mib:.0f} nodes {nodes}")


if __name__ == "__main__":
    main()
