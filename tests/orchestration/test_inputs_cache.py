"""The asset graph cached on disk for the commands that only read (orchestration/dbt/inputs_cache.py).

Unit tests of the key and the entry (what invalidates it, what does not), then the real CLI over a small dbt project
on DuckDB: the second `headwater assets` imports neither dbt nor dlt, and an edit is seen at once, never a stale
answer.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assets import AssetGraph, AssetKey, AssetKind, AssetSpec
from orchestration.dbt import inputs_cache
from orchestration.project import Project
from orchestration.warehouse.targets import Target
from tests.conftest import REPO
from tests.orchestration.test_state_foreign import write_files

FILES = {
    "dbt_project.yml": """
        name: cached
        version: "1.0"
        profile: cached
        model-paths: [models]
    """,
    "profiles.yml": """
        cached:
          target: dev
          outputs:
            dev:
              type: duckdb
              path: "{{ env_var('CACHED_DB') }}"
              threads: 1
    """,
    "models/first.sql": "select 1 as id",
    "models/second.sql": "select id from {{ ref('first') }}",
}


def _project(tmp_path: Path) -> tuple[Project, Target]:
    write_files(tmp_path / "dbt", FILES)
    project = Project(
        root=tmp_path, data_dir=tmp_path / "data", dbt_project_dir=tmp_path / "dbt", profiles_dir=tmp_path / "dbt"
    )
    return project, Target("dev", "duckdb", {"path": str(tmp_path / "w.duckdb")})


def _graph(name: str = "marts.first") -> AssetGraph:
    return AssetGraph.from_specs([AssetSpec(key=AssetKey.parse(name), kind=AssetKind.DBT_MODEL)])


@pytest.mark.unit
def test_the_key_changes_with_every_input_and_with_nothing_else(tmp_path: Path, monkeypatch) -> None:
    project, target = _project(tmp_path)
    monkeypatch.setenv("CACHED_DB", "one")
    key = inputs_cache.inputs_key(project, target, {})
    assert inputs_cache.inputs_key(project, target, {}) == key, "the same inputs give the same key"

    # dbt's outputs, hidden folders and unrelated variables are not inputs
    write_files(tmp_path / "dbt", {"target/manifest.json": "{}", "logs/dbt.log": "x", ".venv/x.py": "x"})
    monkeypatch.setenv("UNRELATED_VARIABLE", "x")
    assert inputs_cache.inputs_key(project, target, {}) == key

    changes = {
        "a model's SQL": lambda: (tmp_path / "dbt/models/first.sql").write_text("select 2 as id"),
        "a new file": lambda: (tmp_path / "dbt/models/schema.yml").write_text("version: 2\n"),
        "a package's macro": lambda: write_files(tmp_path / "dbt", {"dbt_packages/p/macros/m.sql": "{% macro m() %}"}),
        "a variable the profile reads": lambda: monkeypatch.setenv("CACHED_DB", "two"),
        "a DBT_ variable": lambda: monkeypatch.setenv("DBT_SOMETHING", "1"),
        "a HEADWATER_ variable": lambda: monkeypatch.setenv("HEADWATER_PYTHON_ASSETS", "mine"),
        "headwater.yml": lambda: (tmp_path / "headwater.yml").write_text("python_assets: []\n"),
        "a large seed": lambda: (tmp_path / "dbt/seeds/big.csv").write_bytes(b"id\n" + b"1\n" * 600_000),
        "an edit of the large seed": lambda: (tmp_path / "dbt/seeds/big.csv").write_bytes(b"id\n" + b"2\n" * 600_000),
    }
    (tmp_path / "dbt" / "seeds").mkdir()
    seen = {key}
    for what, change in changes.items():
        change()
        now = inputs_cache.inputs_key(project, target, {})
        assert now not in seen, f"{what} did not change the key"
        seen.add(now)
    now = inputs_cache.inputs_key(project, target, {})
    assert inputs_cache.inputs_key(project, target, {"day": 2}) != now, "--vars are an input"
    other = Target("other", "duckdb", target.config)
    assert inputs_cache.inputs_key(project, other, {}) != now, "the target is an input"


@pytest.mark.unit
def test_an_entry_is_used_only_under_its_key_and_with_its_code_unchanged(tmp_path: Path, monkeypatch) -> None:
    project, target = _project(tmp_path)
    project.dbt_target_path.mkdir(parents=True, exist_ok=True)
    assert inputs_cache.load(project, target, "k") is None, "nothing stored: a miss"

    inputs_cache.store(project, target, "k", _graph())
    loaded = inputs_cache.load(project, target, "k")
    assert loaded is not None and [str(k) for k in loaded.specs] == ["marts.first"]
    assert inputs_cache.load(project, target, "other") is None, "another key: a miss"

    # code the graph was built with (a translator, Python assets) changes: a miss
    (tmp_path / "code").mkdir()
    module = tmp_path / "code" / "my_translator_for_cache.py"
    module.write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    importlib.import_module("my_translator_for_cache")
    try:
        inputs_cache.store(project, target, "k", _graph())
        assert inputs_cache.load(project, target, "k") is not None
        module.write_text("VALUE = 22\n")
        assert inputs_cache.load(project, target, "k") is None, "an edited module the graph was built with"
    finally:
        sys.modules.pop("my_translator_for_cache", None)

    for broken in (b"", b"not a pickle", b"\x80\x05K\x01."):
        inputs_cache.cache_path(project, target).write_bytes(broken)
        assert inputs_cache.load(project, target, "k") is None, f"a broken cache file {broken!r} is a miss"


def test_a_parse_ahead_serves_the_next_parse_once_and_only_while_its_inputs_are_unchanged(
    tmp_path: Path, monkeypatch
) -> None:
    """The CLI parses while its local Prefect server starts; the flow's parse then takes that manifest, unless a file
    changed in between (never a stale manifest), and only once."""
    from orchestration.dbt import executor

    monkeypatch.setenv("CACHED_DB", str(tmp_path / "w.duckdb"))
    project, target = _project(tmp_path)
    invoked: list[list[str]] = []
    real = executor.invoke
    monkeypatch.setattr(
        executor, "invoke", lambda p, t, command, **kw: invoked.append(command) or real(p, t, command, **kw)
    )

    executor.parse_ahead(project, target, executor.NO_OPTIONS)
    assert executor.parse(project, target, executor.NO_OPTIONS)["nodes"].keys() >= {"model.cached.second"}
    assert invoked == [["parse"]], "the run's parse took the manifest parsed ahead"
    executor.parse(project, target, executor.NO_OPTIONS)
    assert invoked == [["parse"], ["parse"]], "used once"

    executor.parse_ahead(project, target, executor.NO_OPTIONS)
    (tmp_path / "dbt" / "models" / "third.sql").write_text("select 2 as id")
    assert "model.cached.third" in executor.parse(project, target, executor.NO_OPTIONS)["nodes"]
    assert len(invoked) == 4, "the edit made the run parse again"


def _cli(args: list[str], env: dict[str, str]) -> tuple[str, set[str]]:
    """``headwater ARGS`` in a process of its own; its output and the top-level packages it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "orchestration.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    errors = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("import time"))
    assert done.returncode == 0, done.stdout[-3000:] + errors[-3000:]
    imported = {
        line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines() if line.startswith("import time")
    }
    return done.stdout, imported


def project_env(tmp_path: Path, project: Path, **extra: str) -> dict[str, str]:
    """The environment of a `headwater` process over the dbt project at ``project``, with its data under ``tmp_path``
    and nothing of the developer's Headwater, Prefect or dbt settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "PREFECT_", "DBT_"))}
    env.update(
        HEADWATER_DATA_DIR=str(tmp_path / "data"),
        HEADWATER_PROJECT_DIR=str(project),
        COLUMNS="200",
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        **extra,
    )
    return env


def test_the_reading_commands_answer_from_the_cache_and_see_an_edit_at_once(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write_files(project, FILES)
    env = project_env(tmp_path, project, CACHED_DB=str(tmp_path / "warehouse.duckdb"))
    args = ["--dbt-project", str(project), "--profiles-dir", str(project)]

    first, imported = _cli(["assets", *args], env)
    assert "dbt" in imported, "the first command parses the project"
    assert "2 of 2 assets" in first, first
    again, imported = _cli(["assets", *args], env)
    assert again == first
    assert not imported & {"dbt", "prefect", "dlt", "great_expectations"}, sorted(imported)

    for command in ("status", "checks"):
        _, imported = _cli([command, *args], env)
        assert not imported & {"dbt", "prefect", "dlt"}, (command, sorted(imported & {"dbt", "prefect", "dlt"}))

    (project / "models" / "third.sql").write_text(textwrap.dedent("select id from {{ ref('second') }}"))
    edited, imported = _cli(["assets", *args], env)
    assert "dbt" in imported and "3 of 3 assets" in edited and "third" in edited, edited

    _, imported = _cli(["assets", "--vars", "{day: 2}", *args], env)
    assert "dbt" in imported, "other --vars: parsed again"
    listed, imported = _cli(["assets", "--output", "json", *args], env)
    assert "dbt" not in imported and listed.count("unique_id") == 3, listed
