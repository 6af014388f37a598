"""The asset graph: every dlt table, dbt model/seed/snapshot/source, exposure, semantic node and Python asset as
one node per relation, their checks, and the finer graph of selectable nodes that selection works on."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from assets.dag import DAG, CycleError
from assets.dbt_manifest import DbtTranslator, read_manifest
from assets.errors import UserError
from assets.keys import AssetKey
from assets.nodes import NodeSpec
from assets.specs import AssetKind, AssetSpec, CheckSpec


class DuplicateAssetError(UserError, ValueError):
    """Two different producers claim one key; the message names every such node with its file."""


@dataclass(frozen=True)
class AssetGraph:
    """Specs by key, their checks, and the dependency DAG between keys; ``nodes`` and ``node_dag`` are the
    selectable nodes (every dbt node, tests included, plus Headwater's own) with dbt's edges between them."""

    specs: Mapping[AssetKey, AssetSpec]
    checks: tuple[CheckSpec, ...]
    dag: DAG[AssetKey]
    nodes: Mapping[str, NodeSpec] = field(default_factory=dict)
    node_dag: DAG[str] = field(default_factory=lambda: DAG({}))
    project_name: str = ""

    @classmethod
    def from_specs(
        cls,
        specs: Iterable[AssetSpec],
        checks: Iterable[CheckSpec] = (),
        nodes: Iterable[NodeSpec] = (),
        project_name: str = "",
    ) -> AssetGraph:
        """The graph of ``specs`` (one per key) and their ``checks``; ``nodes`` are the dbt nodes behind them, to
        which a node is added for every asset no dbt node stands for (dlt tables, Python assets).

        Raises:
            CycleError: the dependencies form a cycle (the message prints it).
        """
        by_key: dict[AssetKey, AssetSpec] = {}
        for spec in specs:
            by_key[spec.key] = spec
        dag = DAG({key: [d for d in spec.deps if d in by_key] for key, spec in by_key.items()})
        try:
            dag.levels()
        except CycleError as exc:  # the path, and the files to edit
            files = sorted({by_key[k].path for k in exc.cycle if k in by_key and by_key[k].path})
            hint = (
                f"{', '.join(files)}: remove one of these references" if files else "remove one of these dependencies"
            )
            raise CycleError(exc.cycle, hint) from None
        kept = tuple(
            sorted((c for c in checks if all(k in by_key for k in c.assets)), key=lambda c: (c.subject, c.name))
        )
        all_nodes = {n.unique_id: n for n in nodes}
        for _, spec in sorted(by_key.items()):
            if spec.unique_id and spec.unique_id not in all_nodes:
                all_nodes[spec.unique_id] = _headwater_node(spec, by_key)
        node_dag = DAG({uid: [d for d in n.depends_on if d in all_nodes] for uid, n in all_nodes.items()})
        return cls(dict(sorted(by_key.items())), kept, dag, all_nodes, node_dag, project_name)

    def __contains__(self, key: object) -> bool:
        return key in self.specs

    def __len__(self) -> int:
        return len(self.specs)

    def get(self, key: AssetKey | str) -> AssetSpec:
        """The spec of ``key``.

        Raises:
            KeyError: unknown key; the message suggests close matches.
        """
        key = AssetKey.parse(key) if isinstance(key, str) else key
        if key not in self.specs:
            close = sorted(str(k) for k in self.specs if k.name == key.name)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise KeyError(f"no asset {str(key)!r} in the graph{hint}")
        return self.specs[key]

    def upstream(self, keys: Iterable[AssetKey], depth: int | None = None) -> set[AssetKey]:
        return self.dag.upstream(keys, depth)

    def downstream(self, keys: Iterable[AssetKey], depth: int | None = None) -> set[AssetKey]:
        return self.dag.downstream(keys, depth)

    def toposorted(self) -> list[AssetKey]:
        return self.dag.toposorted()

    def checks_for(self, key: AssetKey) -> list[CheckSpec]:
        return [c for c in self.checks if c.asset_key == key]

    def by_unique_id(self) -> Mapping[str, AssetKey]:
        """Every node id that stands for an asset (its producer and the dbt sources on its relation) -> key."""
        return self._by_unique_id

    def checks_by_id(self) -> Mapping[str, CheckSpec]:
        return self._checks_by_id

    @cached_property
    def _by_unique_id(self) -> dict[str, AssetKey]:
        return {uid: key for key, spec in self.specs.items() for uid in (spec.node_ids or (spec.unique_id,)) if uid}

    @cached_property
    def _checks_by_id(self) -> dict[str, CheckSpec]:
        return {c.unique_id: c for c in self.checks if c.unique_id}

    def label(self, unique_id: str) -> str:
        """A readable name for any node id: its asset key, its check id (``marts.orders:unique_orders_id``),
        ``hooks.<name>`` for a hook, else the id itself."""
        check = self.checks_by_id().get(unique_id)
        if check is not None:
            return check.id
        node = self.nodes.get(unique_id)
        if node is not None:
            return node.label
        return str(self.by_unique_id().get(unique_id) or unique_id)


def _headwater_node(spec: AssetSpec, by_key: Mapping[AssetKey, AssetSpec]) -> NodeSpec:
    """The selectable node of an asset no dbt node stands for: a dlt table no dbt source declares, a Python asset."""
    return NodeSpec(
        unique_id=spec.unique_id,
        resource_type="python" if spec.kind is AssetKind.PYTHON else "source",
        name=spec.name or spec.key.name,
        package=spec.package,
        fqn=spec.fqn or (spec.key.schema, spec.key.name),
        path=spec.path,
        tags=spec.tags,
        depends_on=tuple(sorted(by_key[d].unique_id for d in spec.deps if d in by_key and by_key[d].unique_id)),
        source_name=spec.source_name,
        asset_key=spec.key,
    )


def _where(spec: AssetSpec) -> str:
    return f"{spec.unique_id} ({spec.path})" if spec.path else spec.unique_id


def _merge(key: AssetKey, specs: Sequence[AssetSpec], problems: list[str]) -> AssetSpec:
    """One asset for every spec that names ``key``: its producer (a model, seed, snapshot, dlt table or Python
    asset) with the dbt sources declared on the same relation; a second producer is a conflict."""
    producers = [s for s in specs if s.kind is not AssetKind.SOURCE]
    sources = sorted((s for s in specs if s.kind is AssetKind.SOURCE), key=lambda s: s.unique_id)
    if len(producers) > 1:
        problems.append(
            f"{key}: built by {len(producers)} nodes: "
            + "; ".join(_where(s) for s in sorted(producers, key=lambda s: s.unique_id))
        )
    if not producers:
        first = sources[0]
        return first.merged(
            node_ids=tuple(s.unique_id for s in sources), tags=frozenset().union(*(s.tags for s in sources))
        )
    producer = producers[0]
    source_ids = tuple(s.unique_id for s in sources)
    if producer.kind is AssetKind.DLT and sources:
        # the dlt table IS the dbt source: it keeps the source's id, so task runs and selection name it so
        first = sources[0]
        return producer.merged(
            unique_id=first.unique_id,
            name=first.name,
            fqn=first.fqn,
            path=first.path,
            package=first.package,
            source_name=first.source_name,
            description=first.description or producer.description,
            tags=producer.tags.union(*(s.tags for s in sources)),
            node_ids=source_ids,
        )
    return producer.merged(node_ids=(*producer.node_ids, *source_ids) if producer.node_ids else source_ids)


def build_asset_graph(
    *,
    manifest: Mapping[str, Any] | None = None,
    ingestion: Sequence[AssetSpec] = (),
    python_assets: Sequence[AssetSpec] = (),
    checks: Sequence[CheckSpec] = (),
    translator: DbtTranslator | None = None,
) -> AssetGraph:
    """The asset graph from a parsed manifest, ingestion specs (dlt tables) and Python assets.

    One relation is one asset: a dlt table and the dbt sources that read it, or a seed (or model, or Python
    asset) and the dbt sources declared on its relation, become one node whose producer is known; readers of
    any of those sources depend on it.

    Raises:
        DuplicateAssetError: two producers (two models, a model and a Python asset, ...) claim one key; every
            conflict is listed with its nodes and files.
        CycleError: the dependencies form a cycle.
    """
    read = read_manifest(manifest, translator) if manifest is not None else None
    by_key: dict[AssetKey, list[AssetSpec]] = {}
    for spec in (*(read.assets if read else ()), *ingestion, *python_assets):
        by_key.setdefault(spec.key, []).append(spec)
    problems: list[str] = []
    merged = [_merge(key, specs, problems) for key, specs in sorted(by_key.items())]
    if problems:
        raise DuplicateAssetError(
            "one relation, more than one producer (give one an alias or a schema, or map keys in a "
            "DbtTranslator subclass):\n  " + "\n  ".join(problems)
        )
    return AssetGraph.from_specs(
        _through_ephemeral(merged),
        [*(read.checks if read else ()), *checks],
        read.nodes if read else (),
        read.project_name if read else "",
    )


def _through_ephemeral(specs: list[AssetSpec]) -> list[AssetSpec]:
    """Specs whose code version also covers the ephemeral models they read (transitively): dbt compiles an
    ephemeral model's SQL into its readers, so a change there changes what the readers build. A reader of an
    ephemeral model with no code version has none either (unknown: rebuilt every run)."""
    by_key = {s.key: s for s in specs}
    folded: dict[AssetKey, str | None] = {}
    notes: dict[AssetKey, str] = {}

    def version(spec: AssetSpec) -> str | None:
        if spec.key not in folded:
            folded[spec.key] = spec.code_version  # a cycle (reported elsewhere) ends here
            inlined = [by_key[d] for d in spec.deps if d in by_key and by_key[d].ephemeral]
            parts = [spec.code_version, *(version(e) for e in inlined)]
            if None in parts:
                folded[spec.key] = None
                unknown = next((e for e in inlined if folded.get(e.key) is None), None)
                if spec.code_version is not None and unknown is not None:
                    notes[spec.key] = f"it inlines ephemeral {unknown.key}, whose " + (
                        notes.get(unknown.key) or unknown.unknown_code or "code version cannot be known"
                    ).removeprefix("its ")
            elif inlined:
                folded[spec.key] = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]
        return folded[spec.key]

    folded_specs = [s if s.code_version == version(s) else s.merged(code_version=version(s)) for s in specs]
    return [s.merged(unknown_code=notes[s.key]) if s.key in notes else s for s in folded_specs]
