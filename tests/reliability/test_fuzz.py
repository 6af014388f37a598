"""Fuzzing the selection parser and the manifest loader with hypothesis.

The promise: whatever a user types or whatever a broken manifest holds, Headwater answers with its own
error naming the problem (SelectionError, ManifestError, ...), never a KeyError or TypeError from inside.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets import AssetGraph, ManifestError, SelectionError, build_asset_graph, load_manifest, select
from assets.dag import CycleError
from assets.graph import DuplicateAssetError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
EXPECTED_ERRORS = (ManifestError, CycleError, DuplicateAssetError)

# what selections are made of: names, methods, graph operators, separators and hostile text
ATOMS = st.sampled_from(
    [
        "orders",
        "marts.orders",
        "stg_shop__orders",
        "raw_shop.orders",
        "marts",
        "*",
        "marts.*",
        "stg_*",
        "tag:finance",
        "tag:",
        "path:models/marts",
        "source:raw_shop",
        "source:raw_shop.orders",
        "kind:dlt",
        "kind:dbt",
        "layer:marts",
        "key:marts.orders",
        "resource_type:model",
        "config.materialized:table",
        "fqn:headwater.marts",
        "package:headwater",
        "exposure:revenue_dashboard",
        "nope:x",
        "+",
        "@",
        ",",
        " ",
        "2+",
        "+1",
        "'; drop table marts.orders; --",
        "orders\x00",
        "ö",
        "🦆",
        '"',
        "\\",
        "(",
        ")",
    ]
)
SELECTIONS = st.lists(ATOMS, max_size=6).map("".join) | st.text(max_size=40)
VALID = st.sampled_from(
    [
        "orders",
        "+marts.orders",
        "marts.orders+",
        "@stg_shop__orders",
        "tag:finance",
        "layer:staging",
        "kind:dlt",
        "source:raw_shop+",
        "2+marts.customers",
        "marts.orders+1",
        "config.materialized:view",
        "path:models/marts",
    ]
)


class Demo:
    """The demo's manifest and graph, with a short repr (hypothesis prints the arguments of a failing case)."""

    def __init__(self, manifest: dict) -> None:
        self.manifest = manifest
        self.graph = build_asset_graph(manifest=manifest)

    def __repr__(self) -> str:
        return "<demo manifest>"


@pytest.fixture(scope="module")
def demo(manifest: dict) -> Demo:
    return Demo(manifest)


@FUZZ
@given(selection=SELECTIONS, exclude=st.none() | SELECTIONS)
def test_any_selection_selects_known_assets_or_says_why(demo: Demo, selection: str, exclude) -> None:
    graph = demo.graph
    try:
        chosen = select(graph, selection, exclude)
    except SelectionError as exc:
        assert str(exc), "a selection error must say what is wrong"
        return
    assert chosen <= set(graph.specs)


@FUZZ
@given(a=VALID, b=VALID)
def test_union_and_intersection_follow_dbts_algebra(demo: Demo, a: str, b: str) -> None:
    graph = demo.graph
    assert select(graph, f"{a} {b}") == select(graph, a) | select(graph, b)
    assert select(graph, f"{a},{b}") == select(graph, a) & select(graph, b)
    assert select(graph, a, b) == select(graph, a) - select(graph, b)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@FUZZ
@given(data=st.data())
def test_a_malformed_manifest_gives_a_clear_error(demo: Demo, data) -> None:
    broken = copy.deepcopy(demo.manifest)
    for _ in range(data.draw(st.integers(1, 3))):
        section = data.draw(st.sampled_from(["nodes", "sources", "exposures"]))
        entries = broken.get(section)
        if not isinstance(entries, dict) or not entries:
            broken[section] = data.draw(JSON_VALUES)
            continue
        unique_id = data.draw(st.sampled_from(sorted(entries)))
        node = entries[unique_id]
        if not isinstance(node, dict) or data.draw(st.booleans()) and data.draw(st.booleans()):
            entries[unique_id] = data.draw(JSON_VALUES)
            continue
        field = data.draw(st.sampled_from(sorted(node) or ["name"]))
        if data.draw(st.booleans()):
            node.pop(field, None)
        else:
            node[field] = data.draw(JSON_VALUES)
    try:
        graph = build_asset_graph(manifest=broken)
    except EXPECTED_ERRORS as exc:
        assert str(exc).strip()
        if isinstance(exc, ManifestError):
            assert "dbt parse" in str(exc), "the error must say the fix"
        return
    assert isinstance(graph, AssetGraph)


@FUZZ
@given(content=st.binary(max_size=200) | JSON_VALUES.map(json.dumps).map(str.encode))
def test_load_manifest_reads_a_manifest_or_names_the_file(tmp_path_factory, content: bytes) -> None:
    path = Path(tmp_path_factory.mktemp("m")) / "manifest.json"
    path.write_bytes(content)
    try:
        document = load_manifest(path)
    except ManifestError as exc:
        assert str(path) in str(exc) and ("dbt parse" in str(exc))
        return
    assert isinstance(document["nodes"], dict)
