"""dbt vars as dbt renders them, and the translator a run's code versions are computed with.

dbt keeps ``vars:`` of dbt_project.yml (and ``--vars``) unrendered and renders a var's value when a node reads it:
``vars: {x: "{{ env_var('X', 'p1') }}"}`` gives ``p1`` or the value of X. A code version must hold what dbt renders,
so that ``X=p2 headwater materialize`` rebuilds the readers of ``x``; the text of the YAML does not change. Values
without Jinja are taken as they are (no dbt import); a value dbt's base context cannot render (it calls a macro)
becomes :class:`assets.code_versions.Unrendered`, and its readers have an unknown code version: rebuilt every run,
with why.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from assets import DbtTranslator
from assets.code_versions import Unrendered
from orchestration.project import Project
from orchestration.settings import Settings, project_defaults, project_vars
from orchestration.warehouse.targets import Target

_JINJA = re.compile(r"{{|{%|{#")
_TARGET_FIELDS = (
    *("name", "type", "schema", "database", "dbname", "threads", "host", "port", "user", "account"),
    *("warehouse", "role", "path", "profile_name"),
)
"""What a var may read of ``target`` (never a password or key: those are not what a model is built from)."""


def dbt_environment(target: Target) -> dict[str, str]:
    """The environment dbt renders with in this process: ours, with the target's variables set around each dbt
    invocation (``orchestration.dbt.executor``)."""
    return {**os.environ, **target.env}


def render_vars(values: Mapping[str, Any], target: Target, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``values`` (the merged vars of dbt_project.yml and ``--vars``) with every string holding Jinja rendered as
    dbt renders it when a node reads the var; nested mappings (a package's vars) too. A value that cannot be
    rendered outside a model becomes :class:`Unrendered` with why."""
    env = dict(env if env is not None else dbt_environment(target))
    if not _has_jinja(values):
        return dict(values)
    facts = {k: target.config[k] for k in _TARGET_FIELDS if k in target.config}
    facts.setdefault("name", target.name)
    facts.setdefault("type", target.type)
    merged = dict(values)

    def render(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [render(v) for v in value]
        if not isinstance(value, str) or not _JINJA.search(value):
            return value
        from orchestration.dbt._compat import render_with_dbt

        try:
            return render_with_dbt(value, merged, env, facts)
        except Exception as exc:  # dbt raises many types for Jinja it cannot render: the version is then unknown
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1].strip()[:160]
            return Unrendered(value, f"{type(exc).__name__}: {first}")

    return {name: render(value) for name, value in values.items()}


def _has_jinja(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_has_jinja(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_jinja(v) for v in value)
    return isinstance(value, str) and bool(_JINJA.search(value))


def run_translator(project: Project, target: Target, cli_vars: Mapping[str, Any] | None = None) -> DbtTranslator:
    """The project's one translator (``headwater.yml``'s ``dbt_translator``, the project's run defaults) with the
    vars dbt renders for this target and ``--vars``, and the environment dbt renders with: what the run's code
    versions and the reading commands' are computed from alike.

    Raises:
        ConfigFileError: headwater.yml or dbt_project.yml is invalid, or the translator does not load.
    """
    env = dbt_environment(target)
    rendered = render_vars(project_vars(project, cli_vars), target, env)
    return Settings.load(project.root).translator(project_defaults(project), rendered, env)
