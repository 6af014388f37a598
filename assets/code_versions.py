"""Code versions of dbt nodes: what a node's data is made from, hashed, so a change of it makes the asset stale."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

_ENV_VAR = re.compile(r"""env_var\(\s*(?:(['"])([^'"]+)\1)?""")
"""``env_var('NAME'`` in Jinja: the name when it is a literal (group 2), nothing when it is computed."""

_NOT_DATA = frozenset({"meta", "tags", "docs", "persist_docs", "group", "access", "grants"})
"""Config keys that change no row: a change there does not make a node's data stale."""


def code_version_of(
    node: Mapping[str, Any],
    macros: Mapping[str, Any],
    dbt_vars: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """A hash of dbt's checksum of the node's file, its data-changing config, the SQL of every macro it calls
    (transitively, through the macros' own ``depends_on``), when that SQL reads ``var(...)`` the run's vars (all of
    them: the manifest does not say which var a node reads, so any var change rebuilds every reader), and the value of
    every environment variable it reads with ``env_var('NAME')`` (from ``env``).

    None (unknown: the asset is rebuilt every run) when the SQL computes an env var's name, or dbt did not hash the
    file's contents (a seed over 1 MiB gets its path as checksum)."""
    if (node.get("checksum") or {}).get("name") == "path":
        return None
    seen: set[str] = set()
    stack = list((node.get("depends_on") or {}).get("macros") or [])
    while stack:
        uid = stack.pop()
        if uid in seen:
            continue
        seen.add(uid)
        stack.extend(((macros.get(uid) or {}).get("depends_on") or {}).get("macros") or [])
    config = {k: v for k, v in sorted((node.get("config") or {}).items()) if k not in _NOT_DATA}
    texts = [str(node.get("raw_code") or ""), *(str((macros.get(uid) or {}).get("macro_sql") or "") for uid in seen)]
    names = [m.group(2) for text in texts for m in _ENV_VAR.finditer(text)]
    if None in names:
        return None
    environment = env or {}
    read = {
        name: hashlib.sha256(environment[name].encode()).hexdigest() if name in environment else None
        for name in sorted(set(names))
    }
    text = json.dumps(
        {
            "checksum": (node.get("checksum") or {}).get("checksum"),
            "config": config,
            "macros": {uid: (macros.get(uid) or {}).get("macro_sql") for uid in sorted(seen)},
            "vars": dict(dbt_vars or {}) if any("var(" in t.replace("env_var(", "") for t in texts) else None,
            **({"env": read} if read else {}),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]
