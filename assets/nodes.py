"""Nodes of the selection graph: every entry of the dbt manifest dbt can select, and Headwater's own nodes.

Selection works on nodes, exactly as dbt's does, so that ``headwater assets SEL`` and ``dbt ls -s SEL`` pick the
same things; the asset graph then says which assets and checks those nodes stand for. A node is frozen data read
from the manifest by the translator (``assets.dbt_manifest``); nothing here reads files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from assets.keys import AssetKey

BUILD_TYPES = frozenset({"model", "seed", "snapshot", "test", "unit_test", "saved_query", "exposure", "function"})
"""Resource types ``dbt build`` runs (its runner map); everything else it selects is skipped silently."""

LIST_TYPES = BUILD_TYPES | {"source", "metric", "semantic_model"}
"""Resource types ``dbt ls`` lists by default; Headwater's own nodes (``python``, ``dlt``) are listed too."""

TEST_TYPES = frozenset({"test", "unit_test"})
"""Nodes dbt selects indirectly (``--indirect-selection``) when their parents are selected."""


@dataclass(frozen=True)
class NodeSpec:
    """One selectable node.

    Field by field what dbt's selector methods read: ``fqn`` (default method), ``path``/``patch_path`` (``path:``,
    ``file:``), ``tags`` (None when dbt's node type has no tags, so ``tag:`` never matches it), ``config`` (every
    ``config.X:``), ``version``/``latest_version`` (``version:``), ``access``, ``group`` (dbt's group, from the
    node's config), ``test_name`` (a generic test's macro, or a unit test's name) and ``generic_test``.
    ``empty`` marks a node whose SQL is blank, which dbt never selects. ``asset_key`` is the asset the node stands
    for (None for tests, unit tests and hooks); ``selectable`` is False for hooks and analyses, which are part of
    dbt's graph but never listed or built by selection.
    """

    unique_id: str
    resource_type: str
    name: str
    package: str = ""
    fqn: tuple[str, ...] = ()
    path: str = ""
    patch_path: str = ""
    tags: frozenset[str] | None = frozenset()
    config: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    depends_on: tuple[str, ...] = ()
    source_name: str = ""
    version: str | None = None
    latest_version: str | None = None
    access: str | None = None
    group: str | None = None
    test_name: str | None = None
    generic_test: bool = False
    empty: bool = False
    asset_key: AssetKey | None = None
    selectable: bool = True

    @property
    def is_versioned(self) -> bool:
        return self.resource_type == "model" and self.version is not None

    @property
    def is_test(self) -> bool:
        return self.resource_type in TEST_TYPES

    @property
    def label(self) -> str:
        """How the node is named where no asset key or check id names it (hooks: ``hooks.<name>``)."""
        if self.asset_key is not None:
            return str(self.asset_key)
        if self.resource_type == "operation":
            return f"hooks.{self.name}"
        return f"{self.package}.{self.name}" if self.package else self.name


_COMPILED = ("model", "test", "snapshot", "analysis", "operation")
"""Resource types dbt compiles from SQL: one whose code is empty is ``empty`` (dbt's selector skips it)."""


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def node_spec_of(unique_id: str, node: Mapping[str, Any], section: str) -> NodeSpec:
    """What dbt's selector methods read of one manifest entry (``section``: ``nodes``, ``sources``, ...).

    Raises:
        TypeError: a field of the wrong shape (the translator lists the entry as malformed).
    """
    kind = str(node.get("resource_type") or "")
    config = node.get("config") or {}
    if not isinstance(config, Mapping):
        raise TypeError("config must be a mapping")
    deps = list((node.get("depends_on") or {}).get("nodes") or [])
    if not all(isinstance(d, str) for d in deps):
        raise TypeError("depends_on.nodes must list unique ids")
    patch = node.get("patch_path") or ""
    test_metadata = node.get("test_metadata") or {}
    raw_code = node.get("raw_code")
    return NodeSpec(
        unique_id=unique_id,
        resource_type=kind,
        name=str(node.get("name") or ""),
        package=str(node.get("package_name") or ""),
        fqn=tuple(str(p) for p in node.get("fqn") or ()),
        path=str(node.get("original_file_path") or ""),
        patch_path=patch.split("://", 1)[-1] if patch else "",
        tags=frozenset(node.get("tags") or ()) if "tags" in node else None,
        config=dict(config),
        depends_on=tuple(deps),
        source_name=str(node.get("source_name") or ""),
        version=_text(node.get("version")),
        latest_version=_text(node.get("latest_version")),
        access=_text(node.get("access")),
        group=_text(config.get("group")),
        test_name=_text(test_metadata.get("name"))
        if kind == "test"
        else (node.get("name") if kind == "unit_test" else None),
        generic_test=kind == "test" and bool(test_metadata),
        empty=section == "nodes" and kind in _COMPILED and isinstance(raw_code, str) and not raw_code.strip(),
        selectable=kind in LIST_TYPES,
    )
