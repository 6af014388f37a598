"""The ingestion sources Headwater knows: name, dlt dataset (= dbt source schema), how to build them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dlt

from ingestion.contracts import TableContract
from ingestion.marketing.source import CONTRACT as MARKETING_CONTRACT
from ingestion.marketing.source import marketing_source
from ingestion.reconcile import SqliteReader
from ingestion.shop.simulator import TABLES as SHOP_TABLES
from ingestion.shop.source import CONTRACTS as SHOP_CONTRACTS
from ingestion.shop.source import shop_source


@dataclass(frozen=True)
class SourcePaths:
    """Where the demo inputs live: the shop database and the marketing landing folder."""

    shop_db: Path
    marketing_landing: Path


@dataclass(frozen=True)
class SourceDefinition:
    """One ingestion source.

    ``dataset`` is both the dlt dataset and the dbt source name and schema: that is what makes a raw
    table's asset key (``raw_shop.orders``) the same for dlt and for dbt's ``source('raw_shop', 'orders')``.
    """

    name: str
    dataset: str
    description: str
    build: Callable[[SourcePaths], dlt.sources.DltSource]
    dbt_folder: str
    tables: tuple[str, ...]
    contracts: Mapping[str, TableContract] = field(default_factory=dict)
    """Tables held to a data contract; their rejected rows go to ``<dataset>._headwater_quarantine``."""
    reader: Callable[[SourcePaths], SqliteReader] | None = None
    """How to read the source's keys and cursors back, for the ``reconcile`` check of each table (database
    sources); None when the source cannot be read that way (files)."""

    @property
    def sources_yml(self) -> str:
        """Path of the generated dbt sources file, relative to the dbt project."""
        return f"models/staging/{self.dbt_folder}/_{self.name}__sources.yml"


SOURCES: dict[str, SourceDefinition] = {
    "shop": SourceDefinition(
        name="shop",
        dataset="raw_shop",
        description="The shop's operational database (SQLite), loaded incrementally by dlt's sql_database source.",
        build=lambda paths: shop_source(paths.shop_db),
        dbt_folder="shop",
        tables=tuple(sorted(SHOP_TABLES)),
        contracts=SHOP_CONTRACTS,
        reader=lambda paths: SqliteReader(paths.shop_db),
    ),
    "marketing": SourceDefinition(
        name="marketing",
        dataset="raw_marketing",
        description="Daily ad-spend CSV exports from the landing folder, loaded by dlt's filesystem source.",
        build=lambda paths: marketing_source(paths.marketing_landing),
        dbt_folder="marketing",
        tables=("ad_spend",),
        contracts={"ad_spend": MARKETING_CONTRACT},
    ),
}


def get_source(name: str) -> SourceDefinition:
    """The source called ``name``.

    Raises:
        KeyError: unknown name; the message lists the known ones.
    """
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown ingestion source {name!r}; known sources: {', '.join(sorted(SOURCES))}") from None
