"""What an incremental source cannot see, made visible: the source and the warehouse compared table by table.

A source loaded incrementally on a cursor (``updated_at``) and merged on its key misses three kinds of change:
a row deleted at the source (nothing comes to say so: it stays in the warehouse), a row whose cursor moved
backwards or was written late (it falls behind the cursor: never loaded), and a change of content without a change
of cursor (the same). :func:`reconcile` compares the key sets and the cursor of every row, and the content of a
sample of rows, and says how many of each it found; ``headwater ingest --full-refresh`` (and the nightly full
deployment) reloads the source from scratch, which repairs all three. Rows a contract quarantined are not missing.
"""

from __future__ import annotations

import hashlib
import heapq
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAMPLE = 500
"""Rows whose whole content is compared per table (a deterministic sample: the same ids every run)."""


@dataclass(frozen=True)
class Reconciliation:
    """One table, source against warehouse."""

    table: str
    deleted: tuple[Any, ...] = ()
    """Keys in the warehouse that the source no longer has (hard deletes)."""
    missing: tuple[Any, ...] = ()
    """Keys the source has and the warehouse does not (not quarantined): rows written behind the cursor."""
    stale: tuple[Any, ...] = ()
    """Keys whose cursor differs (a cursor that moved backwards, a late update)."""
    changed: tuple[Any, ...] = ()
    """Keys of the sample whose content differs though the cursor does not."""
    sampled: int = 0
    compared: int = 0
    notes: list[str] = field(default_factory=list)
    eligible: int = 0
    """Rows the sample was drawn from (same key and cursor on both sides): what a sample's share stands for."""

    @property
    def total(self) -> int:
        return len(self.deleted) + len(self.missing) + len(self.stale) + len(self.changed)

    def message(self, source: str) -> str:
        if not self.total:
            return f"{self.compared:,} keys and cursors, and {self.sampled} sampled rows, match the source"
        parts = []
        for what, keys in (
            ("deleted at the source, still in the warehouse", self.deleted),
            ("never loaded (behind the incremental cursor)", self.missing),
            ("with another cursor at the source (a missed update)", self.stale),
        ):
            if keys:
                parts.append(f"{len(keys)} {what}, e.g. {', '.join(str(k) for k in keys[:3])}")
        if self.changed:  # a sample: its count is not the table's; say both
            share = len(self.changed) / max(self.sampled, 1)
            estimate = max(len(self.changed), round(share * max(self.eligible, self.sampled)))
            about = f" (about {estimate:,} of its {self.eligible:,} rows)" if self.eligible > self.sampled else ""
            examples = ", ".join(str(k) for k in self.changed[:3])
            parts.append(
                f"{len(self.changed)} of {self.sampled:,} sampled rows changed at the source without a newer cursor"
                f"{about}, e.g. {examples}"
            )
        return "; ".join(parts) + f"; `headwater ingest --full-refresh {source}` reloads the source and repairs them"


def _spread(key: Any) -> int:
    """A stable pseudo-random rank of ``key`` (an integer key: a multiplicative hash; others: SHA-1 of the text)."""
    if isinstance(key, int) and not isinstance(key, bool):
        return (key * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    return int.from_bytes(hashlib.sha1(str(key).encode()).digest()[:8], "big")


def _sample(keys: Iterable[Any], size: int) -> list[Any]:
    """A deterministic sample: the keys of smallest rank (the same keys every run, spread over the table)."""
    return heapq.nsmallest(size, keys, key=_spread)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) or isinstance(b, (int, float)):
        try:
            return abs(float(a) - float(b)) < 1e-9
        except (TypeError, ValueError):
            return False
    return _text(a) == _text(b)


def _text(value: Any) -> str:
    if isinstance(value, str):
        text = value.replace("T", " ", 1) if "T" in value else value
    else:
        text = value.isoformat(sep=" ") if hasattr(value, "isoformat") else str(value)
    return text.removesuffix("+00:00")[:26]


def _equal(a: Any, b: Any) -> bool:
    return a == b or _same(a, b)


def comparable(cursors: Mapping[Any, Any]) -> dict[Any, Any]:
    """``key -> cursor`` with each cursor in the form :func:`reconcile` compares (a number as a float, anything else
    as its text, timestamps as ``YYYY-MM-DD HH:MM:SS[.ffffff]``), so that most pairs compare equal at once: one
    conversion per row instead of two per comparison (1.9M rows of the demo at scale 80 were 6 s of it)."""
    out: dict[Any, Any] = {}
    for key, value in cursors.items():
        if value is None or isinstance(value, bool):
            out[key] = value
        elif isinstance(value, int | float):
            out[key] = float(value)
        else:
            out[key] = _text(value)
    return out


def reconcile(
    table: str,
    source: Mapping[Any, Any],
    warehouse: Mapping[Any, Any],
    quarantined: Iterable[Any] = (),
    source_rows: Mapping[Any, Mapping[str, Any]] | None = None,
    warehouse_rows: Mapping[Any, Mapping[str, Any]] | None = None,
) -> Reconciliation:
    """Compare ``source`` and ``warehouse`` (key -> cursor, best through :func:`comparable`) and, where given, the
    sampled rows (key -> columns).

    Pure: the callers read both sides.
    """
    held = set(quarantined)
    deleted = sorted(set(warehouse) - set(source), key=str)
    missing = sorted(set(source) - set(warehouse) - held, key=str)
    stale = sorted((k for k in source.keys() & warehouse.keys() if not _equal(source[k], warehouse[k])), key=str)
    changed = []
    for key in sorted(set(source_rows or {}) & set(warehouse_rows or {}), key=str):
        ours, theirs = (source_rows or {})[key], (warehouse_rows or {})[key]
        if any(not _same(ours[c], theirs[c]) for c in ours if c in theirs):
            changed.append(key)
    return Reconciliation(
        table,
        tuple(deleted),
        tuple(missing),
        tuple(stale),
        tuple(changed),
        sampled=len(source_rows or {}),
        compared=len(source),
        eligible=len(source.keys() & warehouse.keys()) - len(stale),
    )


@dataclass(frozen=True)
class SqliteReader:
    """The source side of a database source (the demo shop): keys and cursors, and whole rows of a sample."""

    path: Path
    key: str = "id"
    cursor: str = "updated_at"

    def cursors(self, table: str) -> dict[Any, Any]:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as conn:
            return dict(conn.execute(f'select "{self.key}", "{self.cursor}" from "{table}"').fetchall())  # noqa: S608

    def rows(self, table: str, keys: Iterable[Any]) -> dict[Any, dict[str, Any]]:
        wanted = list(keys)
        if not wanted:
            return {}
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as conn:
            conn.row_factory = sqlite3.Row
            marks = ", ".join("?" for _ in wanted)
            found = conn.execute(f'select * from "{table}" where "{self.key}" in ({marks})', wanted).fetchall()  # noqa: S608
        return {row[self.key]: dict(row) for row in found}


def sample_keys(source: Mapping[Any, Any], warehouse: Mapping[Any, Any], size: int = SAMPLE) -> list[Any]:
    """The keys whose whole rows are compared: present on both sides with the same cursor."""
    same = [k for k in source.keys() & warehouse.keys() if _equal(source[k], warehouse[k])]
    return _sample(same, size)
