"""Descriptions rendered from markdown and HTML-allow-listed (issue 29 finding 11): what `headwater docs` writes is
safe wherever the folder is served."""

from __future__ import annotations

import pytest

from orchestration.web.sanitize import safe_html, sanitize_catalog, sanitize_manifest

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`

HOSTILE = (
    'Orders. <img src="x" onerror="alert(1)"> <meta http-equiv="refresh" content="0;url=https://example.com">'
    "<script>alert(2)</script> [click](javascript:alert(3)) <iframe src='https://example.com'></iframe>"
    '<a href="https://example.com" onclick="alert(4)">ok</a>'
)


def test_scripts_handlers_refreshes_and_javascript_links_go_and_formatting_stays() -> None:
    html = safe_html(HOSTILE + "\n\n**bold** `code`\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    for gone in ("onerror", "<meta", "refresh", "<script", "alert(2)", "javascript:", "<iframe", "onclick"):
        assert gone not in html, (gone, html)
    for kept in ('<img src="x">', "<strong>bold</strong>", "<code>code</code>", "<table>", "<td>2</td>"):
        assert kept in html, (kept, html)
    assert '<a href="https://example.com" rel="noopener noreferrer">ok</a>' in html


def test_every_description_dbt_docs_shows_is_made_safe() -> None:
    manifest = {
        "nodes": {"model.p.m": {"description": HOSTILE, "columns": {"c": {"description": HOSTILE}}}},
        "sources": {"source.p.s.t": {"description": HOSTILE}},
        "exposures": {"exposure.p.e": {"description": HOSTILE}},
        "macros": {"macro.p.x": {"description": HOSTILE, "arguments": [{"description": HOSTILE}]}},
        "docs": {"doc.p.d": {"block_contents": HOSTILE}},
    }
    catalog = {"nodes": {"model.p.m": {"metadata": {"comment": HOSTILE}, "columns": {"c": {"comment": HOSTILE}}}}}
    assert sanitize_manifest(manifest) == 7 and sanitize_catalog(catalog) == 2
    assert "onerror" not in str(manifest) and "<meta" not in str(manifest) and "onerror" not in str(catalog)
