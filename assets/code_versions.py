"""Code versions of dbt nodes: what a node's data is made from, hashed, so a change of it makes the asset stale."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

_NOT_DATA = frozenset({"meta", "tags", "docs", "persist_docs", "group", "access", "grants"})
"""Config keys that change no row: a change there does not make a node's data stale."""


def code_version_of(
    node: Mapping[str, Any], macros: Mapping[str, Any], dbt_vars: Mapping[str, Any] | None = None
) -> str:
    """A hash of dbt's checksum of the node's file, its data-changing config, the SQL of every macro it calls
    (transitively, through the macros' own ``depends_on``), and, when that SQL reads ``var(...)``, the run's vars
    (all of them: the manifest does not say which var a node reads, so any var change rebuilds every reader)."""
    seen: set[str] = set()
    stack = list((node.get("depends_on") or {}).get("macros") or [])
    while stack:
        uid = stack.pop()
        if uid in seen:
            continue
        seen.add(uid)
        stack.extend(((macros.get(uid) or {}).get("depends_on") or {}).get("macros") or [])
    config = {k: v for k, v in sorted((node.get("config") or {}).items()) if k not in _NOT_DATA}
    text = json.dumps(
        {
            "checksum": (node.get("checksum") or {}).get("checksum"),
            "config": config,
            "macros": {uid: (macros.get(uid) or {}).get("macro_sql") for uid in sorted(seen)},
            "vars": dict(dbt_vars or {}) if _reads_vars(node, macros, seen) else None,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _reads_vars(node: Mapping[str, Any], macros: Mapping[str, Any], called: set[str]) -> bool:
    texts = [str(node.get("raw_code") or ""), *(str((macros.get(uid) or {}).get("macro_sql") or "") for uid in called)]
    return any("var(" in text for text in texts)
