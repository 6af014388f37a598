"""Nodes of the selection graph: every entry of the dbt manifest dbt can select, and Headwater's own nodes.

Selection works on nodes, exactly as dbt's does, so that ``headwater assets SEL`` and ``dbt ls -s SEL`` pick the
same things; the asset graph then says which assets and checks those nodes stand for. A node is frozen data read
from the manifest by the translator (``assets.dbt_manifest``); nothing here reads files.
"""

from __future__ import annotations

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
