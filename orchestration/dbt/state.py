"""dbt's ``state:``, ``result:`` and ``source_status:`` selection methods, answered by dbt itself.

``assets.selection`` evaluates dbt's grammar in Python but leaves these three methods to a lookup: comparing two
manifests (``state:modified`` and its sub-selectors ``.body``, ``.configs``, ``.relation``,
``.persisted_descriptions``, ``.macros``, ``.contract``; ``state:new``/``old``/``unmodified``), a previous
``run_results.json`` (``result:error``) or two freshness results (``source_status:fresher``) is dbt's own logic, so
:class:`DbtStateLookup` asks dbt: one ``dbt ls --select <method>:<value> --state DIR --indirect-selection empty``
per distinct criterion, on the manifest already parsed (no second parse: ~0.3 s each). ``source_status:`` first
runs ``dbt source freshness`` for the current side, into ``data/dbt_freshness_now``; as in dbt, only sources with a
``freshness:`` block are measured, and a source whose freshness query failed on either side is never "fresher".

Bad input never skips on doubt: a missing folder, a folder without ``manifest.json`` (or without the
``sources.json`` / ``run_results.json`` a method needs) or a ``dbt ls`` that fails makes the criterion match every
node, and :attr:`DbtStateLookup.notes` says why, so the caller builds everything selected and says so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from orchestration.dbt import executor
from orchestration.project import Project
from orchestration.warehouse.targets import Target

_NEEDS = {"state": "manifest.json", "result": "run_results.json", "source_status": "sources.json"}
"""The artifact each method compares against, besides the manifest every ``--state`` folder needs."""


def state_path(data_dir: Path, target_name: str) -> Path:
    """Where the deployed state of ``target_name`` is kept by default: ``headwater deploy`` and ``plan --save`` keep
    its compiled manifest there; ``plan`` and ``state:`` selection compare with it."""
    return data_dir / "state" / target_name / "manifest.json"


def deployed_state_dir(project: Project, target: Target) -> Path:
    """The folder of the deployed state of ``target``, as dbt's ``--state`` takes it."""
    return state_path(project.data_dir, target.name).parent


class DbtStateLookup:
    """A :data:`assets.selection.StateLookup` over a ``--state`` folder (default: the target's deployed state)."""

    def __init__(
        self,
        project: Project,
        target: Target,
        state_dir: Path | None = None,
        options: executor.DbtOptions = executor.NO_OPTIONS,
    ) -> None:
        self.project, self.target, self.options = project, target, options
        self.explicit = state_dir is not None
        self.state_dir = Path(state_dir) if state_dir is not None else deployed_state_dir(project, target)
        self.notes: list[str] = []
        """One line per criterion that fell back to every node, saying why (empty when dbt answered them all)."""
        self._answers: dict[tuple[str, str], set[str] | None] = {}
        self._freshness_path: Path | None = None

    @property
    def fell_back(self) -> bool:
        return bool(self.notes)

    def __call__(self, method: str, value: str) -> set[str] | None:
        if (method, value) not in self._answers:
            self._answers[method, value] = self._ask(method, value)
        return self._answers[method, value]

    def _problem(self, method: str) -> str | None:
        where = f"--state {self.state_dir}" if self.explicit else f"the deployed state of {self.target.name}"
        fix = (
            "pass a folder holding the artifacts of the run to compare with (dbt's target/ of that run)"
            if self.explicit
            else f"run `headwater plan --save --target {self.target.name}` (or `headwater deploy`), or pass --state DIR"
        )
        if not self.state_dir.is_dir():
            return f"{where}: no such folder ({self.state_dir}); {fix}"
        for name in {"manifest.json", _NEEDS[method]}:
            artifact = self.state_dir / name
            if not artifact.is_file():
                return f"{where}: {artifact} is missing ({method}: compares with it); {fix}"
            try:
                json.loads(artifact.read_text())
            except (OSError, ValueError) as exc:
                return f"{where}: {artifact} is not readable JSON ({exc}); {fix}"
        return None

    def _ask(self, method: str, value: str) -> set[str] | None:
        problem = self._problem(method)
        if problem is None:
            try:
                return self._ls(method, value)
            except executor.DbtInvocationError as exc:
                problem = f"dbt could not evaluate {method}:{value} against {self.state_dir}: {exc}"
        self.notes.append(f"{problem}; {method}:{value} matches every node instead (never skip on doubt)")
        return None

    def _ls(self, method: str, value: str) -> set[str]:
        target_path = self.project.dbt_target_path
        if method == "source_status":
            target_path = self._current_freshness()
        command = [
            "ls",
            "--resource-type",
            "all",
            "--indirect-selection",
            "empty",
            "--select",
            f"{method}:{value}",
            "--state",
            str(self.state_dir),
            "--output",
            "json",
            "--output-keys",
            "unique_id",
        ]
        parsed = executor.parsed_manifest(self.project, self.target, self.options)
        result = executor.invoke(
            self.project, self.target, command, manifest=parsed, target_path=target_path, options=self.options
        )
        if not result.success:
            raise executor.DbtInvocationError(str(result.exception or "dbt ls failed"))
        return {json.loads(line)["unique_id"] for line in result.result or []}

    def _current_freshness(self) -> Path:
        """A target path whose ``sources.json`` holds the sources' freshness now (dbt's ``sources_current``)."""
        if self._freshness_path is None:
            folder = self.project.data_dir / "dbt_freshness_now"  # overwritten by the next comparison
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            result = executor.invoke(
                self.project,
                self.target,
                ["source", "freshness"],
                manifest=executor.parsed_manifest(self.project, self.target, self.options),
                target_path=folder,
                options=self.options,
            )
            if self.target.type == "duckdb":
                executor.release_duckdb()
            # a stale source fails the command but its max_loaded_at is still written; no file means it never ran
            if not (folder / "sources.json").is_file():
                raise executor.DbtInvocationError(f"dbt source freshness wrote no sources.json: {result.exception}")
            self._freshness_path = folder
        return self._freshness_path


def state_lookup(
    project: Project, target: Target, state_dir: Path | str | None, options: Any = executor.NO_OPTIONS
) -> DbtStateLookup:
    """The lookup for ``--state`` (or, when None, the target's deployed state)."""
    return DbtStateLookup(project, target, Path(state_dir) if state_dir else None, options)
