"""Great Expectations suites declared per asset: ``quality/suites/<asset key>.yml``, read without importing GX.

A suite file is named after the asset it checks (``raw_shop.payments.yml``) and lists expectations by their
GX name with their arguments; each expectation becomes one check ``(asset key, name)``::

    severity: error            # default for the file's expectations (error blocks downstream, warn alerts)
    expectations:
      - expect_column_values_to_not_be_null: {column: id}
      - expect_column_values_to_be_between: {column: amount, min_value: 0}
        severity: warn
        name: amount_not_negative     # optional; default <expectation>__<column>
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from assets import AssetKey, CheckSpec, Severity
from assets.code_versions import gx_code_version
from assets.errors import UserError
from assets.specs import CheckKind

_EXPECTATION = re.compile(r"expect_[a-z0-9_]+")
_OPTIONS = {"severity", "name", "description"}


class SuiteError(UserError, ValueError):
    """One or more suite files are invalid; the message lists every problem with its file and the fix."""


@dataclass(frozen=True)
class Suite:
    """The expectations declared for one asset, as checks of kind ``gx``."""

    asset_key: AssetKey
    path: Path
    checks: tuple[CheckSpec, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the suite reads (what a fetch must include)."""
        found: set[str] = set()
        for check in self.checks:
            kwargs = check.config["kwargs"]
            found.update(c for c in [kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B")] if c)
            found.update(kwargs.get("column_list") or ())
        return tuple(sorted(found))


def suite_files(directory: Path) -> list[Path]:
    return sorted(p for p in Path(directory).glob("*.y*ml") if p.suffix in (".yml", ".yaml"))


def load_suites(directory: Path, known_assets: Collection[AssetKey] | None = None) -> list[Suite]:
    """Every suite in ``directory`` (none if it does not exist).

    Raises:
        SuiteError: a file named after no known asset (all such files at once). What is wrong inside a file
            (bad YAML, an unknown option or severity) is a check of its own that reports ``error`` when it runs.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    problems: list[str] = []
    suites = []
    known = {str(k) for k in known_assets} if known_assets is not None else None
    for path in suite_files(directory):
        try:
            suites.append(_load_one(path, known))
        except SuiteError as exc:
            problems.extend(str(exc).splitlines())
    if problems:
        raise SuiteError("invalid Great Expectations suites:\n  " + "\n  ".join(problems))
    return suites


def _load_one(path: Path, known: set[str] | None) -> Suite:
    """One suite file. A file named after no asset is a :class:`SuiteError`; anything wrong inside the file is a
    check of its own that reports ``error`` with the file and line, so the rest of the suite (and the run) goes on."""
    key_text = path.stem
    try:
        key = AssetKey.parse(key_text)
    except ValueError as exc:
        raise SuiteError(f"{path}: the file name must be an asset key like raw_shop.payments.yml ({exc})") from None
    if known is not None and key_text not in known:
        close = difflib.get_close_matches(key_text, sorted(known), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `headwater assets`"
        raise SuiteError(f"{path}: no asset {key_text!r} in the graph{hint}")
    text = path.read_text()
    try:
        root = yaml.compose(text)
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        return Suite(key, path, (_invalid(key, path, line, "gx_suite", f"not valid YAML ({problem})"),))
    if not isinstance(document, dict) or not isinstance(document.get("expectations"), list):
        return Suite(
            key, path, (_invalid(key, path, 1, "gx_suite", "expected a mapping with an `expectations:` list"),)
        )
    lines = _item_lines(root)
    file_problems: list[str] = []
    default = _severity(document.get("severity", "error"), file_problems) or Severity.ERROR
    checks: list[CheckSpec] = []
    names: set[str] = set()
    if file_problems:  # the file's own settings: one check of its own; the expectations still run
        checks.append(_invalid(key, path, _key_line(root, "severity"), "gx_suite", "; ".join(file_problems)))
        names.add("gx_suite")
    for index, item in enumerate(document["expectations"], start=1):
        line = lines[index - 1] if index - 1 < len(lines) else 1
        problems: list[str] = []
        parsed = _expectation(item, problems)
        expectation, kwargs, options = parsed if parsed else (_first_key(item), _kwargs(item), _options(item))
        base = str(options.get("name") or (_default_name(expectation, kwargs) if expectation else "expectation"))
        name = _unique(base, names)
        names.add(name)
        severity = _severity(options.get("severity"), problems) or default
        if problems or parsed is None:
            checks.append(_invalid(key, path, line, name, "; ".join(problems), severity))
            continue
        checks.append(
            CheckSpec(
                asset_key=key,
                name=name,
                severity=severity,
                unique_id=f"gx.{key}.{name}",
                kind=CheckKind.GX,
                description=str(options.get("description") or _describe(expectation, kwargs)),
                config={"type": expectation, "kwargs": kwargs, "line": line},
                path=str(path),
                code_version=gx_code_version(expectation, kwargs, severity.value),
            )
        )
    return Suite(asset_key=key, path=path, checks=tuple(checks))


def _unique(base: str, taken: set[str]) -> str:
    """``base``, or ``base__2``, ``base__3``, ...: check names are unique within a suite by construction."""
    if base not in taken:
        return base
    number = 2
    while f"{base}__{number}" in taken:
        number += 1
    return f"{base}__{number}"


def _invalid(
    key: AssetKey, path: Path, line: int, name: str, problem: str, severity: Severity = Severity.ERROR
) -> CheckSpec:
    """A check that cannot run as written: it reports ``error`` with ``<file>:<line>`` and the fix, once."""
    return CheckSpec(
        asset_key=key,
        name=name,
        severity=severity,
        unique_id=f"gx.{key}.{name}",
        kind=CheckKind.GX,
        description=f"{path}:{line}: {problem}",
        config={"invalid": f"{path}:{line}: {problem}", "line": line, "kwargs": {}},
        path=str(path),
        code_version=gx_code_version("", {}, severity.value, problem),
    )


def _item_lines(root: Any) -> list[int]:
    """The line of each item of the top-level ``expectations:`` list (1-based), from PyYAML's node marks."""
    if not isinstance(root, yaml.MappingNode):
        return []
    for key_node, value in root.value:
        if getattr(key_node, "value", None) == "expectations" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _key_line(root: Any, name: str) -> int:
    for key_node, _ in root.value if isinstance(root, yaml.MappingNode) else ():
        if getattr(key_node, "value", None) == name:
            return key_node.start_mark.line + 1
    return 1


def _first_key(item: Any) -> str:
    if isinstance(item, dict):
        return next((str(k) for k in item if str(k).startswith("expect_")), "")
    return ""


def _kwargs(item: Any) -> dict[str, Any]:
    value = item.get(_first_key(item)) if isinstance(item, dict) else None
    return dict(value) if isinstance(value, dict) else {}


def _options(item: Any) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k in _OPTIONS} if isinstance(item, dict) else {}


def _expectation(item: Any, problems: list[str]) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    if not isinstance(item, dict):
        problems.append("expected a mapping like `- expect_column_values_to_not_be_null: {column: id}`")
        return None
    types = [k for k in item if str(k).startswith("expect_")]
    unknown = sorted(str(k) for k in item if k not in _OPTIONS and not str(k).startswith("expect_"))
    if len(types) != 1:
        problems.append(f"needs exactly one `expect_...` key, found {len(types)}")
        return None
    if unknown:
        problems.append(f"unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_OPTIONS))}")
        return None
    expectation = str(types[0])
    if not _EXPECTATION.fullmatch(expectation):
        problems.append(f"{expectation!r} is not a GX expectation name (snake_case, expect_...)")
        return None
    kwargs = item[expectation] or {}
    if not isinstance(kwargs, dict):
        problems.append(f"the arguments of {expectation} must be a mapping, got {kwargs!r}")
        return None
    return expectation, dict(kwargs), {k: v for k, v in item.items() if k in _OPTIONS}


def _severity(value: Any, problems: list[str]) -> Severity | None:
    if value is None:
        return None
    try:
        return Severity(str(value).lower())
    except ValueError:
        problems.append(f"severity {value!r} must be `error` or `warn`")
        return None


def _default_name(expectation: str, kwargs: dict[str, Any]) -> str:
    column = kwargs.get("column")
    return f"{expectation}__{column}" if column else expectation


def _describe(expectation: str, kwargs: dict[str, Any]) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
    return f"{expectation}({shown})"
