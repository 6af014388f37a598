"""The asset catalog: a small FastAPI app with a JSON API and one page that draws the asset graph.

The graph (dlt tables, dbt models, seeds, snapshots, exposures, Python assets, with their checks) is built
once at start; the run log (last materializations, check results) is read on every request, so the page
shows the latest run without a restart. ``/docs`` serves the dbt docs ``headwater docs`` generated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assets.graph import AssetGraph
from assets.keys import AssetKey
from assets.run_log import CheckRecord, Materialization, stale_from_log

PAGE = Path(__file__).with_name("catalog_page.html")
_DOCS_KINDS = {"source": "source", "model": "model", "seed": "seed", "snapshot": "snapshot", "exposure": "exposure"}
_WORST = ("error", "fail", "warn", "skipped", "pass")


@dataclass(frozen=True)
class RunState:
    """What the run log says now: latest and latest successful materializations, latest check results."""

    latest: Mapping[str, Materialization]
    successful: Mapping[str, Materialization]
    checks: Mapping[tuple[str, str], tuple[CheckRecord, datetime | None]]
    rows: Mapping[str, int] = field(default_factory=dict)
    """Rows each table holds in the warehouse (empty when the warehouse could not be read)."""
    rows_when: Mapping[str, str] = field(default_factory=dict)
    """When ``rows`` were counted, where not now (DuckDB: at the end of the last run that counted the table)."""


def _depths(graph: AssetGraph) -> dict[AssetKey, int]:
    depth: dict[AssetKey, int] = {}
    for key in graph.toposorted():
        deps = [d for d in graph.specs[key].deps if d in graph.specs]
        depth[key] = 1 + max((depth[d] for d in deps), default=-1)
    return depth


def docs_routes(manifest: Mapping[str, Any], key_of: Mapping[str, str]) -> dict[str, str]:
    """asset key -> its dbt docs route (``#!/model/model.headwater.orders``); dlt tables get their source's page."""
    routes = {}
    for unique_id, key in key_of.items():
        kind = unique_id.split(".", 1)[0]
        if kind in _DOCS_KINDS:
            routes[key] = f"#!/{_DOCS_KINDS[kind]}/{unique_id}"
    for unique_id, exposure in (manifest.get("exposures") or {}).items():
        routes[f"exposures.{exposure['name']}"] = f"#!/exposure/{unique_id}"
    return routes


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _freshness(record: Materialization | None, checks: list[dict[str, Any]], now: datetime) -> dict:
    check = next((c for c in checks if c["kind"] == "freshness"), None)
    if check and check["status"]:
        return {"status": check["status"], "detail": check["message"] or "source freshness check"}
    if record is None or record.ended_at is None:
        return {"status": "unknown", "detail": "never materialized"}
    ended = record.ended_at if record.ended_at.tzinfo else record.ended_at.replace(tzinfo=UTC)
    hours = (now - ended).total_seconds() / 3600
    return {"status": "info", "detail": f"last materialized {hours:.1f} h ago"}


def asset_document(
    graph: AssetGraph,
    key: AssetKey,
    state: RunState,
    now: datetime | None = None,
    stale: Mapping[AssetKey, str] | None = None,
    docs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Everything the catalog shows about one asset (``stale``: the graph's stale reasons, if already known)."""
    now = now or datetime.now(UTC)
    stale = stale if stale is not None else stale_from_log(graph, state.latest, state.successful, state.checks)
    spec = graph.specs[key]
    record = state.latest.get(str(key))
    checks: list[dict[str, Any]] = []
    for check in sorted(graph.checks_for(key), key=lambda c: c.name):
        result, ended = state.checks.get((str(key), check.name), (None, None))
        checks.append(
            {
                "name": check.name,
                "kind": check.kind,
                "severity": check.severity.value,
                "status": result.status if result else None,
                "failures": result.failures if result else None,
                "message": (result.message if result else "") or "",
                "when": _iso(ended),
            }
        )
    return {
        "key": str(key),
        "kind": spec.kind.value,
        "layer": spec.layer,
        "description": spec.description,
        "owners": list(spec.owners),
        "tags": sorted(spec.tags),
        "upstream": sorted(str(d) for d in spec.deps if d in graph.specs),
        "downstream": sorted(str(k) for k in graph.downstream([key], depth=1)),
        "materialization": None
        if record is None
        else {
            "status": record.status,
            "run_id": record.run_id,
            "attempts": record.attempts,
            "rows": record.rows,
            "started_at": _iso(record.started_at),
            "ended_at": _iso(record.ended_at),
            "message": record.message,
        },
        "checks": checks,
        "check_status": _worst([c["status"] for c in checks]),
        "freshness": _freshness(record, checks, now),
        "stale": stale.get(key) if spec.builds else None,
        "warehouse_rows": state.rows.get(str(key)),
        "warehouse_rows_when": state.rows_when.get(str(key)) or ("now" if str(key) in state.rows else None),
        "docs": (docs or {}).get(str(key)),
    }


def _worst(statuses: list[Any]) -> str | None:
    seen = [s for s in statuses if s]
    for status in _WORST:
        if status in seen:
            return status
    return None if not seen else seen[0]


def graph_document(graph: AssetGraph, state: RunState) -> dict[str, Any]:
    """Nodes (with a layered position: column = depth from the raw tables) and edges, for the page."""
    depth = _depths(graph)
    rows_in_column: dict[int, int] = {}
    nodes = []
    now = datetime.now(UTC)
    stale = stale_from_log(graph, state.latest, state.successful, state.checks)
    for key in sorted(graph.toposorted(), key=lambda k: (depth[k], graph.specs[k].layer, str(k))):
        document = asset_document(graph, key, state, now, stale)
        column = depth[key]
        row = rows_in_column.get(column, 0)
        rows_in_column[column] = row + 1
        nodes.append(
            {
                "key": document["key"],
                "kind": document["kind"],
                "layer": document["layer"],
                "status": (document["materialization"] or {}).get("status"),
                "checks": len(document["checks"]),
                "check_status": document["check_status"],
                "stale": document["stale"],
                "column": column,
                "row": row,
            }
        )
    edges = [
        {"from": str(d), "to": str(k)} for k in graph.toposorted() for d in graph.specs[k].deps if d in graph.specs
    ]
    return {"nodes": nodes, "edges": edges, "checks": len(graph.checks)}


def create_app(
    graph: AssetGraph,
    read_state: Callable[[list[str]], RunState],
    *,
    target: str,
    docs_dir: Path | None = None,
    docs: Mapping[str, str] | None = None,
) -> Any:
    """The catalog app: ``/`` (the page), ``/api/graph``, ``/api/assets``, ``/api/assets/{key}``, ``/docs``.

    ``read_state(keys)`` reads the run log and counts the rows of ``keys`` (one asset's page counts one table).
    """
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    app = FastAPI(title="Headwater asset catalog", docs_url="/api/docs", redoc_url=None)
    has_docs = docs_dir is not None and (docs_dir / "index.html").exists()
    tables = [str(k) for k in graph.toposorted() if graph.specs[k].builds]

    from orchestration.web.docs import SECURITY_HEADERS, page_policy

    @app.middleware("http")
    async def secure(request: Any, call_next: Any) -> Any:
        """dbt docs (under /docs) render descriptions as HTML on this origin, beside the API: every page gets a
        strict Content-Security-Policy, so no script a description carries can run or call the API."""
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        if response.headers.get("content-type", "").startswith("text/html"):
            path = request.url.path
            policy = "default-src 'none'"  # an HTML page nobody vetted runs nothing
            if path == "/":
                policy = page_policy(PAGE)
            elif path.startswith("/docs") and has_docs and docs_dir is not None:
                root = docs_dir.resolve()
                file = (root / path[len("/docs") :].lstrip("/")).resolve()
                file = file / "index.html" if file.is_dir() else file
                if file.is_relative_to(root) and file.is_file():
                    policy = page_policy(file)
            response.headers["Content-Security-Policy"] = policy
        return response

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/graph")
    def api_graph() -> dict[str, Any]:
        return {"target": target, "docs": has_docs, **graph_document(graph, read_state(tables))}

    @app.get("/api/assets")
    def api_assets() -> list[dict[str, Any]]:
        state = read_state(tables)
        stale = stale_from_log(graph, state.latest, state.successful, state.checks)
        return [asset_document(graph, key, state, stale=stale, docs=docs) for key in graph.toposorted()]

    @app.get("/api/assets/{key}")
    def api_asset(key: str) -> dict[str, Any]:
        try:
            asset_key = AssetKey.parse(key)
        except ValueError:
            raise HTTPException(status_code=400, detail=f"{key!r} is not an asset key (schema.name)") from None
        if asset_key not in graph.specs:
            raise HTTPException(status_code=404, detail=f"no asset {key!r}; see /api/assets")
        document = asset_document(graph, asset_key, read_state([str(asset_key)]), docs=docs)
        document["docs_url"] = f"/docs/{document['docs']}" if has_docs and document["docs"] else None
        return document

    if has_docs:
        app.mount("/docs", StaticFiles(directory=docs_dir, html=True), name="docs")
    return app


def count_rows(target: Any, keys: list[str]) -> dict[str, int]:
    """``count(*)`` of each ``schema.table`` that exists on the target, read-only; {} if the warehouse is busy
    (a run holds DuckDB's lock) or unreachable: the page then shows the run log's figures only."""
    if target.type == "duckdb":
        import duckdb

        try:
            con = duckdb.connect(str(target.config["path"]), read_only=True)
        except (duckdb.Error, OSError):
            return {}
        try:
            present = {
                f"{s}.{t}"
                for s, t in con.execute("select table_schema, table_name from information_schema.tables").fetchall()
            }
            counts: dict[str, int] = {}
            for key in keys:
                if key not in present:
                    continue
                try:  # a view over a table that is gone (a seed that failed) cannot be counted: leave it out
                    counts[key] = con.execute(f"select count(*) from {_quoted(key)}").fetchall()[0][0]  # noqa: S608
                except duckdb.Error:
                    continue
            return counts
        finally:
            con.close()
    import sqlalchemy as sa

    engine = target.engine()
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select table_schema, table_name from information_schema.tables")).fetchall()
            present = {f"{s}.{t}" for s, t in rows}
            counts = {}
            for key in keys:
                if key not in present:
                    continue
                try:
                    counts[key] = conn.execute(sa.text(f"select count(*) from {_quoted(key)}")).scalar_one()  # noqa: S608
                except sa.exc.DBAPIError:
                    conn.rollback()
            return counts
    except sa.exc.SQLAlchemyError:
        return {}
    finally:
        engine.dispose()


def _quoted(key: str) -> str:
    schema, _, table = key.partition(".")
    return '"{}"."{}"'.format(schema.replace('"', '""'), table.replace('"', '""'))
