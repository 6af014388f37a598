"""Descriptions made safe to show anywhere: markdown rendered to HTML, then only an allow-list of HTML kept.

dbt docs renders every description (a model's, a column's, a source's, a ``{% docs %}`` block) as markdown with the
HTML in it, on whatever page serves the folder: an ``<img onerror=...>`` runs script on an S3 bucket or under ``dbt
docs serve``, and a ``<meta http-equiv=refresh>`` sends viewers elsewhere even where a Content-Security-Policy
stops scripts. What ``headwater docs`` writes carries descriptions rendered here instead (markdown with tables and
fenced code, by Python-Markdown) and cleaned by nh3 (the ammonia sanitizer): formatting, tables, code, images and
links with http(s) or relative addresses stay; scripts, event handlers, styles, frames, forms, ``meta`` and
``javascript:`` addresses go. dbt's page takes the HTML as it is (markdown passes HTML through).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

TAGS = frozenset(
    {
        *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code", "span", "div"),
        *("em", "strong", "b", "i", "u", "s", "del", "sup", "sub", "small", "mark", "abbr", "kbd"),
        *("ul", "ol", "li", "dl", "dt", "dd", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption"),
        *("a", "img"),
    }
)
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "th": {"align", "colspan", "rowspan"},
    "td": {"align", "colspan", "rowspan"},
    "code": {"class"},
    "abbr": {"title"},
}
SCHEMES = frozenset({"http", "https", "mailto"})


def safe_html(text: str) -> str:
    """``text`` (markdown, possibly with HTML) as HTML that holds nothing but the allow-listed tags and attributes."""
    import markdown
    import nh3

    if not text or not text.strip():
        return text
    rendered = markdown.markdown(text, extensions=["tables", "fenced_code", "sane_lists"])
    return nh3.clean(
        rendered,
        tags=set(TAGS),
        attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
        url_schemes=set(SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


_DESCRIBED = (
    *("nodes", "sources", "exposures", "metrics", "semantic_models", "saved_queries", "macros", "unit_tests"),
    *("functions", "groups"),
)


def sanitize_manifest(manifest: MutableMapping[str, Any]) -> int:
    """Every description dbt docs shows, in place: each entry's and each column's and argument's, and the
    ``{% docs %}`` blocks. Returns how many texts changed (their HTML was not safe, or was markdown)."""
    changed = 0
    for holder, field in _texts(manifest):
        before = holder.get(field)
        if isinstance(before, str) and before:
            after = safe_html(before)
            if after != before:
                holder[field] = after
                changed += 1
    return changed


def sanitize_catalog(catalog: MutableMapping[str, Any]) -> int:
    """The warehouse's comments dbt docs shows from ``catalog.json`` (tables' and columns'), in place."""
    changed = 0
    for section in ("nodes", "sources"):
        for entry in (catalog.get(section) or {}).values():
            metadata = entry.get("metadata") or {}
            holders = [metadata, *((entry.get("columns") or {}).values())]
            for holder in holders:
                text = holder.get("comment")
                if isinstance(text, str) and text and (after := safe_html(text)) != text:
                    holder["comment"] = after
                    changed += 1
    return changed


def _texts(manifest: MutableMapping[str, Any]) -> Iterator[tuple[MutableMapping[str, Any], str]]:
    for section in _DESCRIBED:
        for entry in (manifest.get(section) or {}).values():
            if not isinstance(entry, MutableMapping):
                continue
            yield entry, "description"
            for column in (entry.get("columns") or {}).values():
                if isinstance(column, MutableMapping):
                    yield column, "description"
            for argument in entry.get("arguments") or []:
                if isinstance(argument, MutableMapping):
                    yield argument, "description"
    for block in (manifest.get("docs") or {}).values():
        if isinstance(block, MutableMapping):
            yield block, "block_contents"
