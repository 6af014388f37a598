"""Asset and check specs: frozen descriptions of what an asset is, never how it is computed."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from assets.keys import AssetKey


class AssetKind(StrEnum):
    """What produces an asset."""

    DLT = "dlt"
    SOURCE = "source"  # a dbt source no Headwater ingestion loads (external)
    DBT_MODEL = "dbt_model"
    DBT_SEED = "dbt_seed"
    DBT_SNAPSHOT = "dbt_snapshot"
    PYTHON = "python"
    EXPOSURE = "exposure"

    @property
    def is_dbt(self) -> bool:
        return self in (AssetKind.DBT_MODEL, AssetKind.DBT_SEED, AssetKind.DBT_SNAPSHOT)

    @property
    def is_materializable(self) -> bool:
        return self not in (AssetKind.SOURCE, AssetKind.EXPOSURE)


class Severity(StrEnum):
    ERROR = "error"
    WARN = "warn"


@dataclass(frozen=True)
class RunPolicy:
    """How an asset runs: its retry budget, retry delay and timeout (None: no timeout)."""

    retries: int = 0
    retry_delay_seconds: float = 0.0
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class AssetSpec:
    """One node of the asset graph.

    ``unique_id`` is the dbt unique id for dbt nodes (``model.headwater.orders``), the dlt
    ``source.table`` for dlt tables. ``fqn`` and ``path`` feed selection (``path:``, dotted names).
    """

    key: AssetKey
    kind: AssetKind
    deps: tuple[AssetKey, ...] = ()
    group: str = "default"
    tags: frozenset[str] = frozenset()
    owners: tuple[str, ...] = ()
    description: str = ""
    code_version: str | None = None
    unique_id: str = ""
    name: str = ""
    fqn: tuple[str, ...] = ()
    path: str = ""
    package: str = ""
    source_name: str = ""
    config: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    policy: RunPolicy = RunPolicy()
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def with_deps(self, deps: tuple[AssetKey, ...]) -> AssetSpec:
        return replace(self, deps=tuple(sorted(set(deps))))

    def merged(self, **changes: Any) -> AssetSpec:
        """A copy with ``changes`` applied (specs are never mutated)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class CheckSpec:
    """A check on one asset: ``(asset key, check name)`` with a severity.

    ``kind`` says what evaluates it: ``dbt_test``, ``gx`` (a Great Expectations expectation),
    ``freshness`` (max age of the asset's data) or ``quarantine`` (records a data contract rejected).
    ``unique_id`` is the dbt test id for dbt tests and ``<kind>.<asset key>.<name>`` otherwise;
    ``extra_assets`` are further assets a test reads (a relationships test's parent), which it must
    wait for. ``config`` holds what the evaluator needs (an expectation's kwargs, freshness thresholds).
    """

    asset_key: AssetKey
    name: str
    severity: Severity = Severity.ERROR
    unique_id: str = ""
    kind: str = "dbt_test"
    description: str = ""
    extra_assets: tuple[AssetKey, ...] = ()
    tags: frozenset[str] = frozenset()
    config: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    path: str = ""

    @property
    def id(self) -> str:
        return f"{self.asset_key}:{self.name}"
