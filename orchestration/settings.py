"""``headwater.yml``, Headwater's own settings, read once per version of the file into typed settings.

The one :class:`assets.DbtTranslator` of a project comes from here: ``dbt_translator: my_team.keys:Translator``
names a subclass (importable from the project root), and every reader of dbt's manifest gets that instance, from
graph building to lineage, change plans, table diff, docs and the catalog, so a customised asset key is the same
key everywhere.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assets import DbtTranslator
from assets.specs import RunPolicy
from orchestration.core.errors import ConfigFileError, read_yaml
from orchestration.project import Project

FILE = "headwater.yml"
_FIX = "fix the file (Headwater's settings: python_assets, dbt_translator, alerts, automations)"


@dataclass(frozen=True)
class Settings:
    """What ``headwater.yml`` says; a missing file is empty settings."""

    path: Path
    python_assets: tuple[str, ...] = ()
    dbt_translator: str | None = None
    """``module:Class`` of a :class:`DbtTranslator` subclass, or None for Headwater's own."""
    document: Mapping[str, Any] = field(default_factory=dict)
    """The whole document, for the sections their own modules read (alerts, automations)."""

    @classmethod
    def load(cls, project_root: Path) -> Settings:
        """The settings of the project at ``project_root`` (read again only when the file changed).

        Raises:
            ConfigFileError: not valid YAML, or a setting of the wrong shape; names the file and the fix.
        """
        path = Path(project_root) / FILE
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return cls(path)
        cached = _CACHE.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        document = read_yaml(path, _FIX) or {}
        if not isinstance(document, dict):
            raise ConfigFileError(f"{path}: expected a mapping of settings; {_FIX}")
        check_document(path, document)
        modules = document.get("python_assets") or []
        translator = document.get("dbt_translator")
        if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
            raise ConfigFileError(f"{path}: python_assets must be a list of module names; {_FIX}")
        if translator is not None and (not isinstance(translator, str) or ":" not in translator):
            raise ConfigFileError(
                f"{path}: dbt_translator must be 'module:Class' (a subclass of assets.DbtTranslator); {_FIX}"
            )
        settings = cls(path, tuple(modules), translator, document)
        _CACHE[path] = (stamp, settings)
        return settings

    def translator(
        self,
        defaults: Mapping[str, Any] | None = None,
        dbt_vars: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> DbtTranslator:
        """The project's translator, with the project's run defaults (``vars: headwater:`` of dbt_project.yml), the
        vars as dbt renders them (``orchestration.dbt.rendering``) and the environment dbt renders with (default:
        this process's).

        Raises:
            ConfigFileError: ``dbt_translator`` does not import or is not a DbtTranslator subclass.
        """
        defaults = defaults or {}
        policy = RunPolicy(
            retries=int(defaults.get("retries", 0)),
            retry_delay_seconds=float(defaults.get("retry_delay_seconds", 0)),
        )
        if self.dbt_translator is None:
            return _with_vars(DbtTranslator(policy), dbt_vars, env)
        module_name, _, class_name = self.dbt_translator.partition(":")
        root = str(self.path.parent)
        if root not in sys.path:
            sys.path.insert(0, root)  # a translator module may live at the project root, beside headwater.yml
        try:
            found = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise ConfigFileError(
                f"{self.path}: dbt_translator {self.dbt_translator!r} cannot be loaded ({type(exc).__name__}: "
                f"{exc}); check the module is importable from {root} and defines {class_name}"
            ) from None
        if not (isinstance(found, type) and issubclass(found, DbtTranslator)):
            raise ConfigFileError(
                f"{self.path}: dbt_translator {self.dbt_translator!r} is not a subclass of assets.DbtTranslator"
            )
        return _with_vars(found(policy), dbt_vars, env)


def _with_vars(
    translator: DbtTranslator, dbt_vars: Mapping[str, Any] | None, env: Mapping[str, str] | None
) -> DbtTranslator:
    return translator.bound(vars=dbt_vars or {}, env=env if env is not None else os.environ)  # env: dbt's env_var()


_CACHE: dict[Path, tuple[int, Settings]] = {}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class NotifierSettings(_Section):
    """One notifier of ``alerts.notifiers``: where an alert goes (``${VARIABLE}`` read from the environment)."""

    type: str
    url: str | None = None
    routing_key: str | None = None


class RouteSettings(_Section):
    """One route of ``alerts.routes``: the notifiers for the assets of an owner or a tag (neither: every asset)."""

    notify: list[str] = Field(default_factory=list)
    owner: str | None = None
    tag: str | None = None


class AlertSettings(_Section):
    """``alerts:``: the notifiers and the routes from assets to them."""

    notifiers: dict[str, NotifierSettings] = Field(default_factory=dict)
    routes: list[RouteSettings] = Field(default_factory=list)


class FailureAutomationSettings(_Section):
    """``automations.flow-run-failed:``: the notifiers Prefect's server posts to when a deployment's run fails."""

    notify: list[str] = Field(default_factory=list)


class AutomationsSettings(_Section):
    """``automations:``: Prefect automations ``headwater deploy`` registers."""

    flow_run_failed: FailureAutomationSettings | None = Field(default=None, alias="flow-run-failed")


class PolicySettings(_Section):
    """One entry of ``automation:``: a selection and the policy that runs it (``assets.automation``)."""

    select: str | None = None
    exclude: str | None = None
    name: str | None = None
    on_upstream_update: bool | dict[str, Any] | None = None
    on_cron: str | None = None
    on_missing: bool | None = None
    max_age: str | int | float | None = None


class SettingsDocument(_Section):
    """The whole of ``headwater.yml``: every section typed, so that a misspelt key is an error, never ignored."""

    python_assets: list[str] | None = None
    dbt_translator: str | None = None
    alerts: AlertSettings | None = None
    automations: AutomationsSettings | None = None
    automation: dict[str, PolicySettings] | None = None


def check_document(path: Path, document: Mapping[str, Any], model: type[BaseModel] = SettingsDocument) -> None:
    """Every key of ``document`` is one the settings know, with a value of the right shape.

    Raises:
        ConfigFileError: every problem at once, one line each: ``<file>:<line>: <where>: <what>``, with the nearest
            known key for a misspelt one (``alert`` -> ``alerts``).
    """
    try:
        model.model_validate(document)
    except ValidationError as exc:
        lines = _key_lines(path)
        problems: dict[str, int] = {}
        for error in exc.errors():
            location = tuple(p for p in error["loc"] if p not in _UNION_TAGS)
            line = lines.get(location) or lines.get(location[:-1]) or 1
            if error["type"] == "extra_forbidden":
                parent = _dotted(location[:-1]) or "the top level"
                known = _known_keys(model, location[:-1])
                close = difflib.get_close_matches(str(location[-1]), known, n=1, cutoff=0.5)
                hint = f"did you mean {close[0]!r}? " if close else ""
                text = f"{path}:{line}: unknown key {location[-1]!r} in {parent}; {hint}known: {', '.join(known)}"
            else:
                head = f"{path}:{line}: {_dotted(location) or 'the document'}: "
                said = next((t for t in problems if t.startswith(head)), None)  # a union: one line, each way
                message = error["msg"][:1].lower() + error["msg"][1:]
                text = f"{said} or {message.removeprefix('input ')}" if said else head + message
                if said:
                    del problems[said]
            problems.setdefault(text, line)
        raise ConfigFileError("\n".join(sorted(problems, key=lambda t: (problems[t], t)))) from None


_UNION_TAGS = frozenset({"bool", "dict[str,any]", "str", "int", "float"})
"""Names pydantic puts in an error's location for the member of a union it tried: not keys of the file."""


def _dotted(location: tuple[Any, ...]) -> str:
    """``alerts.routes[1].notify`` for ``("alerts", "routes", 0, "notify")`` (list items counted from 1)."""
    text = ""
    for part in location:
        text += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _known_keys(model: type[BaseModel], location: tuple[Any, ...]) -> list[str]:
    """The keys allowed at ``location`` (a path of keys and list indexes) of ``model``'s document."""
    current: Any = model
    parts = list(location)
    while parts:
        part = parts.pop(0)
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part)) or next(
            (f for f in current.model_fields.values() if f.alias == part), None
        )
        if field is None:
            return []
        current = _inner_model(field.annotation)
        if isinstance(current, tuple):  # a mapping or list of models: the next part is a name or an index
            current = current[0]
            if parts:
                parts.pop(0)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(f.alias or name for name, f in current.model_fields.items())
    return []


def _inner_model(annotation: Any) -> Any:
    """The model ``annotation`` holds: ``X`` for ``X`` or ``X | None``, ``(X,)`` for ``dict[str, X]`` or
    ``list[X]``; None when it holds none."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin in (dict, list):
        inner = _inner_model(typing.get_args(annotation)[-1])
        return (inner,) if isinstance(inner, type) else None
    if origin in (typing.Union, types.UnionType):
        found = [m for m in (_inner_model(a) for a in typing.get_args(annotation)) if m is not None]
        return found[0] if found else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _key_lines(path: Path) -> dict[tuple[Any, ...], int]:
    """The line (1-based) of every key and list item of a YAML file, by its path of keys and indexes."""
    import yaml

    try:
        root = yaml.compose(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    found: dict[tuple[Any, ...], int] = {}

    def walk(node: Any, at: tuple[Any, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = (*at, getattr(key, "value", None))
                found[here] = key.start_mark.line + 1
                walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                found[(*at, index)] = item.start_mark.line + 1
                walk(item, (*at, index))

    walk(root, ())
    return found


def settings_document(path: Path, fix: str) -> Mapping[str, Any]:
    """The document at ``path``: a project's headwater.yml through :meth:`Settings.load` (read once per version),
    another file (``HEADWATER_ALERTS_FILE``) as it is.

    Raises:
        ConfigFileError: not valid YAML; names the file, the line and ``fix``.
    """
    path = Path(path)
    if path.name == FILE:
        return Settings.load(path.parent).document
    document = read_yaml(path, fix) or {}
    if not isinstance(document, dict):
        return {}
    check_document(path, document)
    return document


def _dbt_project_vars(project: Project) -> dict[str, Any]:
    """``vars:`` of the dbt project's dbt_project.yml, or empty."""
    path = project.dbt_project_dir / "dbt_project.yml"
    document = read_yaml(path, "fix the file (dbt reads it too)") or {}
    found = document.get("vars") or {}
    return found if isinstance(found, dict) else {}


def project_defaults(project: Project) -> dict[str, Any]:
    """``vars: headwater:`` of the dbt project (Headwater's retry defaults), or empty."""
    value = _dbt_project_vars(project).get("headwater") or {}
    return value if isinstance(value, dict) else {}


def project_vars(project: Project, cli_vars: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The vars dbt renders with: ``vars:`` of dbt_project.yml, overridden by ``--vars`` (what a code version of a
    node that reads ``var()`` includes)."""
    return {**_dbt_project_vars(project), **dict(cli_vars or {})}


def project_translator(project: Project) -> DbtTranslator:
    """The project's one translator: ``dbt_translator`` of headwater.yml with the dbt project's run defaults.

    Raises:
        ConfigFileError: headwater.yml or dbt_project.yml is invalid, or the translator does not load.
    """
    return Settings.load(project.root).translator(project_defaults(project))
