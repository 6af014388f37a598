"""Asset and check specs: frozen descriptions of what an asset is, never how it is computed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
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
    DBT_FUNCTION = "dbt_function"
    PYTHON = "python"
    EXPOSURE = "exposure"
    SEMANTIC_MODEL = "semantic_model"
    METRIC = "metric"
    SAVED_QUERY = "saved_query"

    @property
    def is_dbt(self) -> bool:
        """Built by ``dbt build`` into a warehouse object (a relation or a function)."""
        return self in (AssetKind.DBT_MODEL, AssetKind.DBT_SEED, AssetKind.DBT_SNAPSHOT, AssetKind.DBT_FUNCTION)

    @property
    def is_materializable(self) -> bool:
        """Headwater (dlt, dbt or Python) writes it to the warehouse: it has a run log and can be stale."""
        return self.is_dbt or self in (AssetKind.DLT, AssetKind.PYTHON)

    @property
    def dbt_runs(self) -> bool:
        """``dbt build`` runs a node of this kind and reports its result (the dbt kinds, saved queries and
        exposures, whose result is ``no-op`` unless an upstream node failed)."""
        return self.is_dbt or self in (AssetKind.SAVED_QUERY, AssetKind.EXPOSURE)


class Severity(StrEnum):
    ERROR = "error"
    WARN = "warn"


class CheckKind(StrEnum):
    """What evaluates a check (a ``str``: recorded, shown and compared as its value)."""

    DBT_TEST = "dbt_test"
    """a dbt data test (generic or singular), run by ``dbt build`` with its asset or on its own"""
    UNIT_TEST = "unit_test"
    """a dbt unit test: runs before the model it tests, whose failure skips that model"""
    GX = "gx"
    """a Great Expectations expectation of a suite in ``quality/suites``"""
    FRESHNESS = "freshness"
    """the age of an asset's data against dbt's ``freshness`` thresholds"""
    QUARANTINE = "quarantine"
    """the records a data contract rejected during a dlt load"""
    RECONCILE = "reconcile"
    """a loaded table's rows against its source's"""

    @property
    def in_dbt(self) -> bool:
        """dbt runs it (``dbt build``): its failure fails the run whatever its severity says to Headwater."""
        return self in (CheckKind.DBT_TEST, CheckKind.UNIT_TEST)


@dataclass(frozen=True)
class RunPolicy:
    """How an asset runs: its retry budget, retry delay and timeout (None: no timeout)."""

    retries: int = 0
    retry_delay_seconds: float = 0.0
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class AssetSpec:
    """One node of the asset graph.

    ``unique_id`` is the id of the node that produces it: the dbt unique id for dbt nodes
    (``model.headwater.orders``), the dbt source's id for a dlt table that a dbt source declares. ``node_ids``
    are every node of the selection graph that stands for this asset: its producer and the dbt sources
    declared on the same relation (a seed that is also read as ``source('raw', 'orders')``).
    ``layer`` is Headwater's layer (``raw``, ``staging``, ``marts``, ...; selection ``layer:``), not dbt's group.
    """

    key: AssetKey
    kind: AssetKind
    deps: tuple[AssetKey, ...] = ()
    layer: str = "default"
    tags: frozenset[str] = frozenset()
    owners: tuple[str, ...] = ()
    description: str = ""
    code_version: str | None = None
    unknown_code: str = ""
    """Why ``code_version`` is None (it cannot be known), said by ``status`` and the run."""
    unique_id: str = ""
    name: str = ""
    fqn: tuple[str, ...] = ()
    path: str = ""
    package: str = ""
    source_name: str = ""
    config: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    policy: RunPolicy = RunPolicy()
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    node_ids: tuple[str, ...] = ()
    relation: str = ""
    """``schema.identifier`` of the warehouse object it is (a dbt node's schema and alias); empty: its key."""

    @property
    def relation_name(self) -> str:
        """Where it lives in the warehouse, ``schema.identifier``."""
        return self.relation or str(self.key)

    @property
    def ephemeral(self) -> bool:
        """An ephemeral dbt model: compiled into its readers, never built, never stale."""
        return self.config.get("materialized") == "ephemeral"

    @property
    def builds(self) -> bool:
        """Something is written when it materializes (not an external source, exposure or ephemeral model)."""
        return self.kind.is_materializable and not self.ephemeral

    def with_deps(self, deps: tuple[AssetKey, ...]) -> AssetSpec:
        return replace(self, deps=tuple(sorted(set(deps))))

    def merged(self, **changes: Any) -> AssetSpec:
        """A copy with ``changes`` applied (specs are never mutated)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class CheckSpec:
    """A check on one asset: ``(asset key, check name)`` with a severity.

    ``kind`` says what evaluates it: ``dbt_test``, ``unit_test`` (dbt's, run before the model it tests, whose
    failure skips that model), ``gx`` (a Great Expectations expectation), ``freshness`` (max age of the asset's
    data) or ``quarantine`` (records a data contract rejected). ``asset_key`` is None for a dbt test that reads no
    node at all (a singular test querying tables directly): it still runs, counts and fails the run.
    ``unique_id`` is the dbt test id for dbt tests and ``<kind>.<asset key>.<name>`` otherwise;
    ``extra_assets`` are further assets a test reads (a relationships test's parent), which it must
    wait for. ``config`` holds what the evaluator needs (an expectation's kwargs, freshness thresholds).
    """

    asset_key: AssetKey | None
    name: str
    severity: Severity = Severity.ERROR
    unique_id: str = ""
    kind: CheckKind = CheckKind.DBT_TEST
    description: str = ""
    extra_assets: tuple[AssetKey, ...] = ()
    tags: frozenset[str] = frozenset()
    config: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    path: str = ""
    package: str = ""
    policy: RunPolicy = RunPolicy()
    code_version: str | None = None
    """What the check's verdict is made from (a dbt test's SQL, macros and arguments; a GX expectation's type,
    arguments and severity): a check whose version differs from its last result's is due, and runs against its
    asset as it stands. None: unknown (due every run), or a kind that runs with every load (freshness, quarantine)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", CheckKind(self.kind))  # a kind given as its text is the same kind

    @property
    def subject(self) -> str:
        """What the check is about, as shown and recorded: its asset key, or for a test on no asset (a singular
        test that queries tables directly) its dbt package."""
        return str(self.asset_key) if self.asset_key is not None else (self.package or "project")

    @property
    def owned_key(self) -> AssetKey:
        """The asset the check is on, for checks that always have one (GX, quarantine, freshness, reconcile)."""
        if self.asset_key is None:
            raise ValueError(f"check {self.id} is on no asset (a test that queries tables directly)")
        return self.asset_key

    @property
    def assets(self) -> tuple[AssetKey, ...]:
        """Every asset the check reads: its own and the ``extra_assets`` (none for a test on no asset)."""
        return ((self.asset_key,) if self.asset_key is not None else ()) + self.extra_assets

    @property
    def id(self) -> str:
        return f"{self.subject}:{self.name}"


_PERIODS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def period(spec: Mapping[str, Any] | None) -> timedelta | None:
    """dbt's ``{count: 24, period: hour}`` as a timedelta (None when unset).

    Raises:
        ValueError: an unknown period or a non-positive count.
    """
    if not spec or spec.get("count") is None:
        return None
    unit = str(spec.get("period", "hour")).lower()
    if unit not in _PERIODS:
        raise ValueError(f"freshness period {unit!r} is not one of {', '.join(_PERIODS)}")
    count = int(spec["count"])
    if count <= 0:
        raise ValueError(f"freshness count must be positive, got {count}")
    return count * _PERIODS[unit]
