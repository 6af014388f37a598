"""What a state decision reads from the warehouse: the relations present, the data version of each relation the
run may keep (so rows changed by hand are seen), and what the sources Headwater does not load hold now (their newest
``loaded_at_field``, the warehouse's change metadata), in one connection.

A source is proven unchanged only by a value that moves with every change of it: a ``loaded_at_field`` that moved
says it changed, and change metadata (PostgreSQL's statistics counters, Snowflake's ``LAST_ALTERED``) says whether
anything changed at all. Where neither exists (DuckDB has no change counters) its readers are rebuilt every run and
the observation says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from assets import AssetGraph, AssetKey, AssetKind
from assets.run_log import Materialization, reads_through
from orchestration.engine.checks import newest
from orchestration.warehouse.targets import Target
from orchestration.warehouse.versions import RelationVersion, relation_versions, why_unproven


@dataclass
class WarehouseView:
    """``present``: every table and view (``schema.name``, lower case); ``versions``: data versions of the tables
    asked for; ``observed``: sources whose data version moved (or cannot be proven unchanged) since last recorded."""

    present: set[str] = field(default_factory=set)
    versions: dict[str, RelationVersion] = field(default_factory=dict)
    observed: list[Materialization] = field(default_factory=list)

    def version_texts(self) -> dict[str, str]:
        return {name: version.value for name, version in self.versions.items()}


def look(
    target: Target,
    graph: AssetGraph,
    keys: Iterable[AssetKey],
    successful: Mapping[str, Materialization],
    run_id: str,
    now: datetime,
) -> WarehouseView:
    """The warehouse as a decision over ``keys`` (and what they read) needs it. A DuckDB file that does not exist
    yet holds nothing (and is not created by looking).

    Raises:
        sqlalchemy.exc.DBAPIError: the warehouse's catalog did not answer.
    """
    if target.type == "duckdb" and not Path(target.config["path"]).exists():
        return WarehouseView()
    import sqlalchemy as sa

    keys = list(keys)
    sources = sources_read(graph, keys)
    relations = {graph.specs[k].relation_name for k in keys if graph.specs[k].builds}
    relations |= {graph.specs[k].relation_name for k in sources}
    engine = target.engine()
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select table_schema, table_name from information_schema.tables")).fetchall()
            present = {f"{s}.{t}".lower() for s, t in rows}
            versions = relation_versions(target, relations, conn)
            observed = _observe_sources(conn, target, graph, sources, versions, successful, run_id, now)
    finally:
        engine.dispose()
    return WarehouseView(present, versions, observed)


def sources_read(graph: AssetGraph, keys: Iterable[AssetKey]) -> set[AssetKey]:
    """Sources Headwater does not load that ``keys`` read directly or through ephemeral models."""
    return {
        d
        for k in keys
        for d in reads_through(graph, graph.specs[k])
        if d in graph.specs and graph.specs[d].kind is AssetKind.SOURCE
    }


def _observe_sources(
    conn: Any,
    target: Target,
    graph: AssetGraph,
    sources: set[AssetKey],
    versions: Mapping[str, RelationVersion],
    successful: Mapping[str, Materialization],
    run_id: str,
    now: datetime,
) -> list[Materialization]:
    """The sources among ``sources`` whose data version differs from the one last recorded (or was never recorded),
    as observations at ``now``. The data version is the newest ``loaded_at_field`` and, where the warehouse keeps
    change metadata, the relation's version. A source nothing can prove unchanged (no ``loaded_at_field``, no change
    metadata), or whose value cannot be read, is reported as changed with why (``data_version`` None: not recorded,
    so the next run looks again)."""
    import sqlalchemy as sa

    observed = []
    for key in sorted(sources):
        spec = graph.specs[key]
        field_name = spec.config.get("loaded_at_field")
        strong = versions.get(spec.relation_name.lower())
        strong = strong if strong is not None and strong.strong else None
        last = successful.get(str(key))
        if not field_name and strong is None:
            why = f"it has no loaded_at_field and {why_unproven(target, spec.relation_name, versions)}: "
            why += "nothing proves its rows did not change (give it a loaded_at_field)"
            observed.append(Materialization(str(key), run_id, "observed", 1, now, now, kind="source", message=why))
            continue
        loaded = ""
        if field_name:
            schema, _, table = spec.relation_name.partition(".")
            try:
                value = newest(conn, schema, table, field_name)
            except sa.exc.DBAPIError as exc:
                why = f"its loaded_at_field could not be read ({str(exc.orig).strip().splitlines()[0][:160]})"
                observed.append(Materialization(str(key), run_id, "observed", 1, now, now, kind="source", message=why))
                continue
            loaded = "" if value is None else str(value)
        version = loaded if strong is None else f"{loaded}|{strong.value}"
        if last is not None and last.data_version == version:
            continue
        observed.append(
            Materialization(
                str(key),
                run_id,
                "observed",
                1,
                now,
                now,
                kind="source",
                message=_moved(field_name, loaded, version, last),
                data_version=version,
            )
        )
    return observed


def _moved(field_name: str | None, loaded: str, version: str, last: Materialization | None) -> str:
    if last is None or last.data_version is None:
        return "first observed: nothing recorded what its readers were built from"
    before = last.data_version.split("|", 1)[0]
    if field_name and loaded != before:
        return f"its {field_name} moved to {loaded or 'nothing'}"
    what = version.split("|", 1)[-1]
    return f"its rows changed (the warehouse's change metadata moved to {what})"
