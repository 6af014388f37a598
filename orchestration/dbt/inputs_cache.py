"""What a project's dbt parse and asset graph are built from, as one key; and the asset graph kept on disk under it,
for the commands that only read (``assets``, ``status``, ``checks``): when nothing it was built from has changed they
load it instead of importing dbt and dlt and running a partial ``dbt parse``. (``orchestration.analysis.compile_cache``
keeps ``dbt compile`` under the same key plus the warehouse's relations.)

Valid the way dbt decides a partial parse is valid, and a little stricter (when in doubt, parse):

- the *inputs key*, a SHA-256 over the content of every file of the dbt project (``dbt_packages`` included;
  ``target/``, ``logs/`` and hidden folders left out; a file over 1 MiB, a large seed, by size and modification
  time), ``profiles.yml``, ``headwater.yml``, ``pyproject.toml``, the
  GX suites and the stored dlt schemas of the target; the value of every variable named by an ``env_var()`` in
  those files or in ``--vars`` and of every ``DBT_*`` and ``HEADWATER_*`` variable (but for a few that cannot change a graph: folders,
  alerts, lock and log settings); the run's ``--vars``; the target; the versions
  of Python, dbt, the target's adapter and dlt;
- the *code* the graph was built with: every module loaded from outside the installed packages when it was built
  (Headwater's own code in a checkout, the project's Python assets and translator), by size and modification time.

Secrets reach the key only through the hash. The entry is written only when the inputs did not change while the
graph was built, so a file edited during a parse cannot be saved under the key of the file before. Anything
unreadable is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import sys
import sysconfig
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from assets import AssetGraph
from orchestration.project import Project
from orchestration.warehouse.targets import Target

FORMAT = 1
_SKIPPED_DIRS = {"target", "logs", "__pycache__", "node_modules"}
_NOT_INPUTS = {  # Headwater's variables that cannot change a graph (folders count through the paths hashed)
    "HEADWATER_DATA_DIR",
    "HEADWATER_PROJECT_DIR",
    "HEADWATER_LOCK_TIMEOUT",
    "HEADWATER_DEBUG",
    "HEADWATER_ALERTS_FILE",
    "HEADWATER_ALERT_DEADLINE",
    "HEADWATER_ALERT_WEBHOOK_URL",
    "HEADWATER_SLACK_WEBHOOK_URL",
    "HEADWATER_PAGERDUTY_ROUTING_KEY",
    "HEADWATER_DBT_LOG_LEVEL_FILE",
    "HEADWATER_REQUIRE_SERVICES",
}
_HASHED_UP_TO = 1 << 20
"""Files up to this size count by content; larger ones (seeds) by size and modification time."""
_ENV_VAR = re.compile(rb"""env_var\(\s*['"]([^'"]+)['"]""")


def cache_path(project: Project, target: Target, cli_vars: Mapping[str, Any] | None = None) -> Path:
    """One entry per target without ``--vars`` and one for the last ``--vars`` given (a command with vars does not
    push out the graph the plain commands use)."""
    return project.dbt_target_path / f"headwater_graph.{target.name}{'.vars' if cli_vars else ''}.pickle"


def inputs_key(project: Project, target: Target, cli_vars: Mapping[str, Any] | None) -> str:
    """The digest of everything but code the graph of ``target`` is built from (see the module's docstring)."""
    digest = hashlib.sha256(f"format {FORMAT}\n".encode())
    env_names: set[str] = set()
    for path in _input_files(project, target):
        try:
            stat = path.stat()
            if stat.st_size > _HASHED_UP_TO:  # a large seed: its size and time, as dbt keeps for large seeds
                digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
                continue
            content = path.read_bytes()
        except OSError:
            content = b"<unreadable>"
        env_names.update(name.decode() for name in _ENV_VAR.findall(content))
        digest.update(f"{path}\0{len(content)}\0".encode())
        digest.update(hashlib.sha256(content).digest())
    env_names.update(n for n in os.environ if n.startswith(("DBT_", "HEADWATER_")) and n not in _NOT_INPUTS)
    # a --vars value dbt renders may read a variable too (--vars '{day: "{{ env_var(\'DAY\') }}"}')
    env_names.update(n.decode() for text in _texts(cli_vars or {}) for n in _ENV_VAR.findall(text.encode()))
    facts = {
        "target": [target.name, target.type],
        "vars": dict(cli_vars or {}),
        "env": {name: os.environ.get(name) for name in sorted(env_names)},
        "versions": [sys.version, *(_version(d) for d in ("dbt-core", f"dbt-{target.type}", "dlt"))],
    }
    digest.update(json.dumps(facts, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _texts(value: Any) -> Iterator[str]:
    """Every string in a nested value (the keys and values of ``--vars``)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, str):
        yield value


def load(project: Project, target: Target, key: str, cli_vars: Mapping[str, Any] | None = None) -> AssetGraph | None:
    """The cached graph when its inputs key is ``key`` and its code is unchanged; else None."""
    try:
        with cache_path(project, target, cli_vars).open("rb") as handle:
            entry = pickle.load(handle)
        if entry["format"] != FORMAT or entry["key"] != key or not code_unchanged(entry["code"]):
            return None
        graph = entry["graph"]
    except Exception:  # a missing, partial or foreign cache file is a miss: the caller parses
        return None
    return graph if isinstance(graph, AssetGraph) else None


def store(
    project: Project, target: Target, key: str, graph: AssetGraph, cli_vars: Mapping[str, Any] | None = None
) -> None:
    """Save ``graph`` under ``key`` with the code loaded now (atomically; a failure to write is ignored)."""
    path = cache_path(project, target, cli_vars)
    entry = {"format": FORMAT, "key": key, "code": loaded_code(), "graph": graph}
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        with scratch.open("wb") as handle:
            pickle.dump(entry, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(scratch, path)
    except OSError:
        scratch.unlink(missing_ok=True)


def _input_files(project: Project, target: Target) -> Iterator[Path]:
    yield from _walk(project.dbt_project_dir)
    yield project.profiles_dir / "profiles.yml"
    yield project.root / "headwater.yml"
    yield project.root / "pyproject.toml"
    if project.suites_dir is not None:
        yield from _walk(project.suites_dir)
    if project.is_headwater_dbt_project and project.pipelines_dir.is_dir():
        for pipeline in sorted(project.pipelines_dir.glob(f"*_{target.name}")):
            yield from _walk(pipeline / "schemas")


def _walk(root: Path) -> Iterator[Path]:
    """Files under ``root`` in a stable order, without dbt's outputs, hidden folders and caches."""
    if not root.is_dir():
        return
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for name in sorted(files):
            yield Path(folder) / name


def _version(distribution: str) -> str:
    try:
        return f"{distribution} {metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return f"{distribution} absent"


def _installed_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple({paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"]})


def loaded_code() -> dict[str, tuple[int, int]]:
    """Size and modification time of every source file loaded from outside the installed packages."""
    installed = _installed_roots()
    code: dict[str, tuple[int, int]] = {}
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file or file.startswith(installed):
            continue
        try:
            stat = os.stat(file)
        except OSError:
            continue
        code[file] = (stat.st_size, stat.st_mtime_ns)
    return code


def code_unchanged(code: Mapping[str, tuple[int, int]]) -> bool:
    for file, (size, mtime) in code.items():
        try:
            stat = os.stat(file)
        except OSError:
            return False
        if (stat.st_size, stat.st_mtime_ns) != (size, mtime):
            return False
    return True


_AHEAD: dict[tuple[str, ...], tuple[str, dict[str, Any]]] = {}
"""Manifests parsed ahead in this process (``executor.parse_ahead``), by dbt parse key: (inputs key, manifest)."""


def keep_ahead(parse_key: tuple[str, ...], inputs: str, manifest: dict[str, Any]) -> None:
    _AHEAD[parse_key] = (inputs, manifest)


def parsed_ahead(
    parse_key: tuple[str, ...], project: Project, target: Target, cli_vars: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The manifest kept under ``parse_key``, once, if none of its inputs changed since it was parsed."""
    found = _AHEAD.pop(parse_key, None)
    if found is None or found[0] != inputs_key(project, target, cli_vars):
        return None
    return found[1]
