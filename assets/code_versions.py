"""Code versions of dbt nodes and of checks: what a node's data (or a check's verdict) is made from, hashed, so that a
change of it makes the asset stale (or the check due).

What is hashed is what dbt renders, not the text of the files: the vars a node reads arrive *rendered* (a var whose
value is ``{{ env_var('X') }}`` holds X's value, see ``orchestration.dbt.rendering``), and the value of every
environment variable a node's SQL or its macros read. What cannot be known makes the version unknown (None) with
why, and an unknown version is stale on every run: when in doubt, build.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_ENV_VAR = re.compile(r"""env_var\(\s*(?:(['"])([^'"]+)\1)?""")
"""``env_var('NAME'`` in Jinja: the name when it is a literal (group 2), nothing when it is computed."""

_VAR = re.compile(r"""(?<![\w.])var\(\s*(?:(['"])([^'"]+)\1)?""")
"""``var('NAME'`` in Jinja (not ``env_var``): the name when it is a literal (group 2), nothing when it is computed."""

_NOT_DATA = frozenset({"meta", "tags", "docs", "persist_docs", "group", "access", "grants"})
"""Config keys that change no row: a change there does not make a node's data stale."""

_CONTRACT_TYPES = frozenset({"model"})


@dataclass(frozen=True)
class Unrendered:
    """A dbt var Headwater could not render the way dbt does (its Jinja calls a macro, or reads a variable that is
    unset): a node that reads vars then has no code version. ``why`` says what failed."""

    text: str
    why: str


@dataclass(frozen=True)
class CodeVersion:
    """A code version (``value``), or why it cannot be known (``value`` None)."""

    value: str | None
    unknown: str = ""


def code_version_of(
    node: Mapping[str, Any],
    macros: Mapping[str, Any],
    dbt_vars: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """The value of :func:`node_code_version` (None when it cannot be known)."""
    return node_code_version(node, macros, dbt_vars, env).value


def node_code_version(
    node: Mapping[str, Any],
    macros: Mapping[str, Any],
    dbt_vars: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> CodeVersion:
    """A hash of what dbt builds the node from: dbt's checksum of its file, its data-changing config, the SQL of
    every macro it calls (transitively, through the macros' own ``depends_on``), the vars that SQL reads as dbt
    renders them (those it names with ``var('NAME')``; all of them when a name is computed), the value of every
    environment variable it reads with ``env_var('NAME')`` (from ``env``), and for a model with an enforced contract its columns' types and constraints (dbt builds the table
    with them). A test's version also holds its ``test_metadata`` (the generic test and its arguments).

    Unknown (with why) when the SQL computes an env var's name, a var it may read could not be rendered, or dbt did
    not hash the file's contents (a seed over 1 MiB whose content was not hashed for it)."""
    checksum = node.get("checksum") or {}
    if isinstance(checksum, Mapping) and checksum.get("name") == "path":
        return CodeVersion(None, "dbt does not hash a seed over 1 MiB and its file could not be read")
    seen = _macros_called(node, macros)
    config = {k: v for k, v in sorted((node.get("config") or {}).items()) if k not in _NOT_DATA}
    texts = [str(node.get("raw_code") or ""), *(str((macros.get(uid) or {}).get("macro_sql") or "") for uid in seen)]
    texts.append(json.dumps(node.get("test_metadata") or {}, sort_keys=True, default=str))
    names = [m.group(2) for text in texts for m in _ENV_VAR.finditer(text)]
    if None in names:
        return CodeVersion(None, "its SQL computes the name of an environment variable it reads (env_var)")
    read_vars = _vars_read(texts, dbt_vars or {})
    for name, value in sorted(_flat(read_vars)):
        if isinstance(value, Unrendered):
            return CodeVersion(None, f"var {name!r} cannot be rendered as dbt would ({value.why})")
    reads_vars = bool(read_vars) or any(m.group(2) is not None for t in texts for m in _VAR.finditer(t))
    environment = env or {}
    read = {
        name: hashlib.sha256(environment[name].encode()).hexdigest() if name in environment else None
        for name in sorted(set(names))
    }
    document: dict[str, Any] = {
        "checksum": checksum.get("checksum") if isinstance(checksum, Mapping) else checksum,
        "config": config,
        "macros": {uid: (macros.get(uid) or {}).get("macro_sql") for uid in sorted(seen)},
        "vars": read_vars if reads_vars else None,
        **({"env": read} if read else {}),
    }
    if node.get("test_metadata"):
        document["test"] = node.get("test_metadata")
    contract = _contract(node, config)
    if contract is not None:
        document["contract"] = contract
    text = json.dumps(document, sort_keys=True, default=str)
    return CodeVersion(hashlib.sha256(text.encode()).hexdigest()[:16])


def _vars_read(texts: list[str], dbt_vars: Mapping[str, Any]) -> dict[str, Any]:
    """The vars a node may read: those its SQL and macros name with ``var('NAME')`` (a package's own vars of that
    name too: ``vars: {my_package: {NAME: ...}}``), or every var when one name is computed."""
    names = [m.group(2) for text in texts for m in _VAR.finditer(text)]
    if None in names:
        return dict(dbt_vars)
    wanted = set(names)
    read: dict[str, Any] = {n: dbt_vars[n] for n in sorted(wanted) if n in dbt_vars}
    for scope, values in sorted(dbt_vars.items()):
        if isinstance(values, Mapping) and (inner := {n: values[n] for n in sorted(wanted) if n in values}):
            read.setdefault(scope, inner)
    return read


def _macros_called(node: Mapping[str, Any], macros: Mapping[str, Any]) -> set[str]:
    seen: set[str] = set()
    stack = list((node.get("depends_on") or {}).get("macros") or [])
    while stack:
        uid = stack.pop()
        if uid in seen:
            continue
        seen.add(uid)
        stack.extend(((macros.get(uid) or {}).get("depends_on") or {}).get("macros") or [])
    return seen


def _contract(node: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any] | None:
    """An enforced contract's columns (name, type, constraints) and model constraints: dbt creates the table with
    them, so adding a ``not_null`` constraint rebuilds the model (as a change of its SQL would)."""
    contract = config.get("contract") or {}
    if node.get("resource_type") not in _CONTRACT_TYPES or not (
        isinstance(contract, Mapping) and contract.get("enforced")
    ):
        return None
    columns = node.get("columns") or {}
    return {
        "columns": {
            name: {"data_type": (column or {}).get("data_type"), "constraints": (column or {}).get("constraints") or []}
            for name, column in sorted(columns.items())
        },
        "constraints": node.get("constraints") or [],
    }


def _flat(values: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Every var as ``(dotted name, value)``, nested mappings (a package's vars) included."""
    found: list[tuple[str, Any]] = []
    for name, value in values.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, Mapping):
            found.extend(_flat(value, f"{dotted}."))
        else:
            found.append((dotted, value))
    return found


def unit_test_code_version(node: Mapping[str, Any]) -> str | None:
    """A unit test's definition (its inputs, expected rows, overrides, config and dbt's checksum, which covers its
    fixture files), hashed; None when the manifest gives none of it."""
    fields = {k: node.get(k) for k in ("given", "expect", "overrides", "versions", "checksum", "model")}
    if not any(fields.values()):
        return None
    fields["config"] = {k: v for k, v in sorted((node.get("config") or {}).items()) if k not in _NOT_DATA}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def gx_code_version(expectation: str, kwargs: Mapping[str, Any], severity: str, invalid: str = "") -> str:
    """A GX expectation's definition: its type, arguments and severity (what its verdict and its gate depend on)."""
    document = {"type": expectation, "kwargs": kwargs, "severity": severity, "invalid": invalid}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()[:16]
