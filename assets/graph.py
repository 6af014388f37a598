"""The asset graph: every dlt table, dbt model/seed/snapshot/source, exposure and Python asset as one node."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assets.dag import DAG
from assets.dbt_manifest import DbtTranslator, specs_from_manifest
from assets.keys import AssetKey
from assets.specs import AssetKind, AssetSpec, CheckSpec


class DuplicateAssetError(ValueError):
    """Two different producers claim one key."""


@dataclass(frozen=True)
class AssetGraph:
    """Specs by key, their checks, and the dependency DAG between keys."""

    specs: Mapping[AssetKey, AssetSpec]
    checks: tuple[CheckSpec, ...]
    dag: DAG[AssetKey]

    @classmethod
    def from_specs(cls, specs: Iterable[AssetSpec], checks: Iterable[CheckSpec] = ()) -> AssetGraph:
        by_key: dict[AssetKey, AssetSpec] = {}
        for spec in specs:
            by_key[spec.key] = spec
        dag = DAG({key: [d for d in spec.deps if d in by_key] for key, spec in by_key.items()})
        dag.levels()  # raises CycleError with the cycle's path
        known = set(by_key)
        kept = tuple(sorted((c for c in checks if c.asset_key in known), key=lambda c: (str(c.asset_key), c.name)))
        return cls(specs=dict(sorted(by_key.items())), checks=kept, dag=dag)

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

    def subgraph(self, keys: Iterable[AssetKey]) -> AssetGraph:
        keep = set(keys)
        return AssetGraph.from_specs(
            [s.with_deps(tuple(d for d in s.deps if d in keep)) for k, s in self.specs.items() if k in keep],
            [c for c in self.checks if c.asset_key in keep],
        )

    def toposorted(self) -> list[AssetKey]:
        return self.dag.toposorted()

    def checks_for(self, key: AssetKey) -> list[CheckSpec]:
        return [c for c in self.checks if c.asset_key == key]

    def by_unique_id(self) -> dict[str, AssetKey]:
        return {spec.unique_id: key for key, spec in self.specs.items() if spec.unique_id}


def build_asset_graph(
    *,
    manifest: Mapping[str, Any] | None = None,
    ingestion: Sequence[AssetSpec] = (),
    python_assets: Sequence[AssetSpec] = (),
    checks: Sequence[CheckSpec] = (),
    translator: DbtTranslator | None = None,
) -> AssetGraph:
    """The asset graph from a parsed manifest, ingestion specs (dlt tables) and Python assets.

    A dlt table and the dbt source that reads it share one key and become one node of kind ``dlt``
    (keeping the dbt source's id, so ``source:`` selection still finds it).

    Raises:
        DuplicateAssetError: two producers (say a dbt model and a Python asset) claim one key.
        CycleError: the dependencies form a cycle.
    """
    dbt_specs, dbt_checks = specs_from_manifest(manifest, translator) if manifest is not None else ([], [])
    by_key: dict[AssetKey, AssetSpec] = {}
    for spec in dbt_specs:
        by_key[spec.key] = spec
    for spec in ingestion:
        existing = by_key.get(spec.key)
        if existing is not None and existing.kind is not AssetKind.SOURCE:
            raise DuplicateAssetError(f"{spec.key}: loaded by dlt ({spec.unique_id}) and built by {existing.unique_id}")
        if existing is not None:
            spec = spec.merged(
                unique_id=existing.unique_id,
                name=existing.name,
                fqn=existing.fqn,
                path=existing.path,
                package=existing.package,
                source_name=existing.source_name,
                description=existing.description or spec.description,
                tags=spec.tags | existing.tags,
            )
        by_key[spec.key] = spec
    for spec in python_assets:
        if spec.key in by_key:
            raise DuplicateAssetError(
                f"{spec.key}: Python asset {spec.unique_id} clashes with {by_key[spec.key].unique_id}"
            )
        by_key[spec.key] = spec
    return AssetGraph.from_specs(by_key.values(), [*dbt_checks, *checks])
