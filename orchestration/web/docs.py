"""dbt docs from ingestion onwards: ``dbt docs generate`` into ``<data>/docs``, then Headwater's additions.

dbt docs already starts at the dlt tables (the generated sources carry dlt's descriptions and types) and
shows the exposures. Headwater adds to the generated manifest, which dbt's page reads: each asset's last
check results (dbt tests, GX expectations, freshness, quarantine) from the run log, with a link to the GX
Data Docs copied beside; and for every model column the columns it is computed from (column lineage). Every
description is then rendered from markdown and HTML-allow-listed (``sanitize``), so the folder is safe wherever it is
served.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from assets.dbt_manifest import DbtTranslator
from assets.lineage import ColumnLineage, ColumnRef
from assets.run_log import CheckRecord
from orchestration.analysis.lineage import key_map, lineage_of_manifest
from orchestration.dbt import executor
from orchestration.project import Project
from orchestration.settings import project_translator
from orchestration.warehouse.targets import Target
from orchestration.web.sanitize import sanitize_catalog, sanitize_manifest

_MARK = {"pass": "✓", "warn": "!", "fail": "✗", "error": "✗", "skipped": "–"}  # plain glyphs: no emoji font needed
SECTION = "\n\n---\n#### Checks (Headwater run log"


@dataclass(frozen=True)
class DocsResult:
    folder: Path
    checks_linked: int
    columns_with_lineage: int
    data_docs: Path | None


def docs_dir(project: Project) -> Path:
    return project.data_dir / "docs"


def generate_docs(project: Project, target: Target, options: executor.DbtOptions = executor.NO_OPTIONS) -> DocsResult:
    """Generate dbt docs for ``target`` into ``<data>/docs`` and add check results and column lineage.

    Raises:
        DbtInvocationError: ``dbt docs generate`` failed; the message carries dbt's error.
    """
    from orchestration.warehouse.run_log import RunLog

    folder = docs_dir(project)
    manifest = executor.artifacts(project, target, ["docs", "generate"], folder, options)
    data_docs = _copy_data_docs(project, folder)
    checks = RunLog.for_target(project, target).latest_checks()
    catalog_path = folder / "catalog.json"
    catalog = json.loads(catalog_path.read_text()) if catalog_path.exists() else None
    translator = project_translator(project)
    lineage = lineage_of_manifest(manifest, project.dbt_project_dir, translator, target, catalog)
    linked, columns = annotate_manifest(manifest, checks, lineage, target.name, data_docs is not None, translator)
    # every description rendered and allow-listed: the folder is safe on any static server (S3, `dbt docs serve`)
    sanitize_manifest(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    if catalog is not None and sanitize_catalog(catalog):
        catalog_path.write_text(json.dumps(catalog))
    return DocsResult(folder, linked, columns, data_docs)


def annotate_manifest(
    manifest: dict[str, Any],
    checks: Mapping[tuple[str, str], tuple[CheckRecord, datetime | None]],
    lineage: ColumnLineage,
    target_name: str,
    with_data_docs: bool,
    translator: DbtTranslator,
) -> tuple[int, int]:
    """Add check results to descriptions and upstream columns to column descriptions, in place.

    Returns how many nodes got check results and how many columns got lineage.
    """
    by_asset: dict[str, list[tuple[CheckRecord, datetime | None]]] = defaultdict(list)
    for (asset_key, _), entry in checks.items():
        by_asset[asset_key].append(entry)
    keys = key_map(manifest, translator)
    linked = columns_done = 0
    for collection in ("nodes", "sources"):
        for unique_id, node in (manifest.get(collection) or {}).items():
            key = keys.get(unique_id)
            if key is None:
                continue
            if by_asset.get(key):
                node["description"] = (node.get("description") or "") + _checks_markdown(
                    by_asset[key], target_name, with_data_docs
                )
                linked += 1
            columns_done += _annotate_columns(node, key, lineage)
    return linked, columns_done


def _checks_markdown(entries: list[tuple[CheckRecord, datetime | None]], target_name: str, data_docs: bool) -> str:
    rows = [
        f"| {record.check_name} | {record.severity} | {_MARK.get(record.status, '')} {record.status} | "
        f"{'' if record.failures is None else record.failures} | {ended:%Y-%m-%d %H:%M} |"
        if ended
        else f"| {record.check_name} | {record.severity} | {record.status} | {record.failures or ''} | |"
        for record, ended in sorted(entries, key=lambda e: (e[0].status == "pass", e[0].check_name))
    ]
    text = f"{SECTION} on {target_name})\n\n| check | severity | last result | rows | when |\n|---|---|---|---|---|\n"
    text += "\n".join(rows)
    if data_docs:
        text += "\n\nGreat Expectations results: [GX Data Docs](gx_data_docs/index.html)"
    return text


def _annotate_columns(node: dict[str, Any], key: str, lineage: ColumnLineage) -> int:
    count = 0
    documented = node.setdefault("columns", {})
    for column in lineage.columns.get(key, ()):
        ref = ColumnRef(key, column)
        parents = lineage.parents(ref)
        if not parents:
            continue
        entry = documented.setdefault(column, {"name": column, "description": "", "meta": {}, "tags": []})
        upstream = ", ".join(f"`{p}`" for p in parents)
        roots = [r for r in lineage.sources(ref) if r not in parents]
        note = f"Computed from {upstream}"
        if roots:
            note += f"; raw: {', '.join(f'`{r}`' for r in roots)}"
        entry["description"] = ((entry.get("description") or "") + f"\n\n{note}.").strip()
        count += 1
    return count


def _copy_data_docs(project: Project, folder: Path) -> Path | None:
    """Put GX's Data Docs beside dbt's docs (``<docs>/gx_data_docs``) so one server shows both."""
    site = project.data_dir / "gx" / "uncommitted" / "data_docs" / "local_site"
    if not (site / "index.html").exists():
        return None
    destination = folder / "gx_data_docs"
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(site, destination)
    return destination / "index.html"


_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)
_CSP_CACHE: dict[tuple[str, float], str] = {}


def content_security_policy(html: bytes) -> str:
    """A strict policy for one page: its own inline scripts (by their hashes) and same-origin files run; nothing a
    description, a column value or any other injected markup adds can (no inline handlers, no foreign scripts)."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode()}'"
        for m in _INLINE_SCRIPT.finditer(html)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


def page_policy(path: Path) -> str:
    """:func:`content_security_policy` of the file at ``path``, computed once per version of the file."""
    key = (str(path), path.stat().st_mtime)
    if key not in _CSP_CACHE:
        _CSP_CACHE[key] = content_security_policy(path.read_bytes())
    return _CSP_CACHE[key]


SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def serve(folder: Path, port: int, host: str = "127.0.0.1") -> None:
    """Serve ``folder`` over HTTP until interrupted (dbt's page fetches manifest.json and catalog.json).

    Every HTML page is sent with a strict Content-Security-Policy (dbt docs render descriptions as HTML: a
    ``<img onerror=...>`` in a model's description must not run); folders are never listed; many connections may
    wait at once (the 1.8 MB index under load)."""
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def list_directory(self, path: Any) -> None:
            self.send_error(404, "No listing here")
            return None

        def end_headers(self) -> None:
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            target = Path(self.translate_path(self.path))
            if target.is_dir():
                target = target / "index.html"
            if target.suffix in (".html", ".htm") and target.is_file():
                self.send_header("Content-Security-Policy", page_policy(target))
            super().end_headers()

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the default 5 reset connections under a burst of readers
        daemon_threads = True

    with Server((host, port), partial(Handler, directory=str(folder))) as server:
        server.serve_forever()
