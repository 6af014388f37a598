"""``headwater.yml``, Headwater's own settings, read once per version of the file into typed settings.

The one :class:`assets.DbtTranslator` of a project comes from here: ``dbt_translator: my_team.keys:Translator``
names a subclass (importable from the project root), and every reader of dbt's manifest gets that instance, from
graph building to lineage, change plans, table diff, docs and the catalog, so a customised asset key is the same
key everywhere.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets import DbtTranslator
from assets.specs import RunPolicy
from orchestration.errors import ConfigFileError, read_yaml
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
    translator.vars = dict(dbt_vars or {})
    translator.env = dict(env if env is not None else os.environ)  # what dbt's env_var() reads
    return translator


_CACHE: dict[Path, tuple[int, Settings]] = {}


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
    return document if isinstance(document, dict) else {}


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
