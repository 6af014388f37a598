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

_EXPECTATION = re.compile(r"expect_[a-z0-9_]+")
_OPTIONS = {"severity", "name", "description"}


class SuiteError(ValueError):
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
        found = set()
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
        SuiteError: unreadable YAML, a file named after no known asset, an unknown option or severity,
            a name used twice; all problems at once, each with its file.
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
    key_text = path.stem
    problems: list[str] = []
    try:
        key = AssetKey.parse(key_text)
    except ValueError as exc:
        raise SuiteError(f"{path}: the file name must be an asset key like raw_shop.payments.yml ({exc})") from None
    if known is not None and key_text not in known:
        close = difflib.get_close_matches(key_text, sorted(known), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `headwater assets`"
        raise SuiteError(f"{path}: no asset {key_text!r} in the graph{hint}")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(document, dict) or not isinstance(document.get("expectations"), list):
        raise SuiteError(f"{path}: expected a mapping with an `expectations:` list")
    default = _severity(document.get("severity", "error"), path, "file", problems)
    checks: list[CheckSpec] = []
    names: set[str] = set()
    for index, item in enumerate(document["expectations"], start=1):
        where = f"{path}: expectation {index}"
        parsed = _expectation(item, where, problems)
        if parsed is None:
            continue
        expectation, kwargs, options = parsed
        name = str(options.get("name") or _default_name(expectation, kwargs))
        if name in names:
            problems.append(f"{where}: check name {name!r} used twice in this file; give one a `name:`")
            continue
        names.add(name)
        severity = _severity(options.get("severity"), path, f"expectation {index}", problems) or default
        checks.append(
            CheckSpec(
                asset_key=key,
                name=name,
                severity=severity or Severity.ERROR,
                unique_id=f"gx.{key}.{name}",
                kind="gx",
                description=str(options.get("description") or _describe(expectation, kwargs)),
                config={"type": expectation, "kwargs": kwargs},
                path=str(path),
            )
        )
    if problems:
        raise SuiteError("\n".join(problems))
    return Suite(asset_key=key, path=path, checks=tuple(checks))


def _expectation(item: Any, where: str, problems: list[str]) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    if not isinstance(item, dict):
        problems.append(f"{where}: expected a mapping like `- expect_column_values_to_not_be_null: {{column: id}}`")
        return None
    types = [k for k in item if str(k).startswith("expect_")]
    unknown = sorted(str(k) for k in item if k not in _OPTIONS and not str(k).startswith("expect_"))
    if len(types) != 1:
        problems.append(f"{where}: needs exactly one `expect_...` key, found {len(types)}")
        return None
    if unknown:
        problems.append(f"{where}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_OPTIONS))}")
        return None
    expectation = str(types[0])
    if not _EXPECTATION.fullmatch(expectation):
        problems.append(f"{where}: {expectation!r} is not a GX expectation name (snake_case, expect_...)")
        return None
    kwargs = item[expectation] or {}
    if not isinstance(kwargs, dict):
        problems.append(f"{where}: the arguments of {expectation} must be a mapping, got {kwargs!r}")
        return None
    return expectation, dict(kwargs), {k: v for k, v in item.items() if k in _OPTIONS}


def _severity(value: Any, path: Path, where: str, problems: list[str]) -> Severity | None:
    if value is None:
        return None
    try:
        return Severity(str(value).lower())
    except ValueError:
        problems.append(f"{path}: {where}: severity {value!r} must be `error` or `warn`")
        return None


def _default_name(expectation: str, kwargs: dict[str, Any]) -> str:
    column = kwargs.get("column")
    return f"{expectation}__{column}" if column else expectation


def _describe(expectation: str, kwargs: dict[str, Any]) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
    return f"{expectation}({shown})"
