from __future__ import annotations

import pytest

from assets import AssetKey, AssetKind, AssetSpec, CycleError, DuplicateAssetError, ManifestError, build_asset_graph
from assets.dbt_manifest import load_manifest, specs_from_manifest
from ingestion import SOURCES, ingestion_specs

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`


def test_demo_graph_has_every_kind_and_one_node_per_raw_table(manifest: dict) -> None:
    graph = build_asset_graph(manifest=manifest, ingestion=ingestion_specs())
    kinds = {spec.kind for spec in graph.specs.values()}
    assert {AssetKind.DLT, AssetKind.DBT_MODEL, AssetKind.DBT_SEED, AssetKind.DBT_SNAPSHOT, AssetKind.EXPOSURE} <= kinds
    orders = graph.get("raw_shop.orders")
    assert orders.kind is AssetKind.DLT
    assert orders.unique_id == "source.headwater.raw_shop.orders"  # the dlt table IS the dbt source
    assert not any(s.kind is AssetKind.SOURCE for s in graph.specs.values()), "every source is loaded by dlt"
    assert graph.get("staging.stg_shop__orders").deps == (AssetKey.parse("raw_shop.orders"),)
    assert AssetKey.parse("marts.orders") in graph.downstream([AssetKey.parse("raw_shop.orders")])


def test_key_alignment_for_every_source(manifest: dict) -> None:
    """dlt dataset/table == dbt source schema/table, for every table of every source."""
    sources = {
        (node["source_name"], node["schema"], node["name"])
        for node in manifest["sources"].values()
        if node["package_name"] == "headwater"
    }
    for definition in SOURCES.values():
        for table in definition.tables:
            assert (definition.dataset, definition.dataset, table) in sources, (definition.name, table)
    dbt_raw = {(schema, name) for _, schema, name in sources}
    dlt_raw = {(d.dataset, t) for d in SOURCES.values() for t in d.tables}
    assert dbt_raw == dlt_raw


def test_checks_attach_to_the_model_they_test(manifest: dict) -> None:
    graph = build_asset_graph(manifest=manifest, ingestion=ingestion_specs())
    names = {c.name for c in graph.checks_for(AssetKey.parse("marts.orders"))}
    assert "unique_orders_order_id" in names
    rel = next(c for c in graph.checks if c.name.startswith("relationships_orders_customer_id"))
    assert rel.asset_key == AssetKey.parse("marts.orders")
    assert rel.severity.value == "warn"
    assert rel.extra_assets == (AssetKey.parse("marts.customers"),)
    source_check = next(c for c in graph.checks if c.name == "source_unique_raw_shop_orders_id")
    assert source_check.asset_key == AssetKey.parse("raw_shop.orders")


def test_cycle_is_refused_with_its_path() -> None:
    a, b = AssetKey.parse("x.a"), AssetKey.parse("x.b")
    specs = [AssetSpec(key=a, kind=AssetKind.PYTHON, deps=(b,)), AssetSpec(key=b, kind=AssetKind.PYTHON, deps=(a,))]
    with pytest.raises(CycleError, match=r"x\.a -> x\.b -> x\.a|x\.b -> x\.a -> x\.b"):
        build_asset_graph(python_assets=specs)


def test_python_asset_clashing_with_a_model_is_refused(manifest: dict) -> None:
    clash = AssetSpec(key=AssetKey.parse("marts.orders"), kind=AssetKind.PYTHON, unique_id="python.orders")
    with pytest.raises(DuplicateAssetError, match="marts.orders"):
        build_asset_graph(manifest=manifest, python_assets=[clash])


def test_malformed_manifest_errors_name_file_and_entries(tmp_path) -> None:
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match=str(bad)):
        load_manifest(bad)
    bad.write_text('{"nodes": []}')
    with pytest.raises(ManifestError, match="not a dbt manifest"):
        load_manifest(bad)
    broken = {"nodes": {"model.p.a": {"resource_type": "model", "name": "a"}, "model.p.b": "oops"}}
    with pytest.raises(ManifestError) as info:
        specs_from_manifest(broken)
    assert "model.p.a" in str(info.value) and "model.p.b" in str(info.value)


def _manifest(nodes: dict, sources: dict | None = None) -> dict:
    def node(unique_id: str, **fields) -> dict:
        kind, package, name = unique_id.split(".")[:3]
        base = {
            "resource_type": kind,
            "name": name,
            "package_name": package,
            "fqn": [package, name],
            "schema": "raw",
            "original_file_path": f"{kind}s/{name}.sql",
            "depends_on": {"nodes": []},
            "config": {},
            "tags": [],
        }
        return {**base, **fields}

    return {
        "metadata": {"project_name": "p"},
        "nodes": {uid: node(uid, **fields) for uid, fields in nodes.items()},
        "sources": {uid: node(uid, **fields) for uid, fields in (sources or {}).items()},
    }


def test_a_seed_that_is_the_raw_data_and_the_sources_on_it_are_one_asset() -> None:
    manifest = _manifest(
        {
            "seed.p.raw_orders": {"alias": "raw_orders"},
            "model.p.stg_orders": {"alias": "stg_orders", "depends_on": {"nodes": ["source.p.ecom.raw_orders"]}},
            "model.p.stg_legacy": {"alias": "stg_legacy", "depends_on": {"nodes": ["source.p.legacy.orders"]}},
        },
        {
            "source.p.ecom.raw_orders": {"name": "raw_orders", "source_name": "ecom"},
            "source.p.legacy.orders": {"name": "orders", "identifier": "raw_orders", "source_name": "legacy"},
        },
    )
    graph = build_asset_graph(manifest=manifest)
    raw = graph.get("raw.raw_orders")
    assert raw.kind is AssetKind.DBT_SEED and raw.unique_id == "seed.p.raw_orders"
    assert raw.node_ids == ("seed.p.raw_orders", "source.p.ecom.raw_orders", "source.p.legacy.orders")
    assert graph.get("raw.stg_orders").deps == (raw.key,) and graph.get("raw.stg_legacy").deps == (raw.key,)
    assert len(graph) == 3, "one relation, one asset: nothing vanished, nothing doubled"
    assert graph.label("source.p.legacy.orders") == "raw.raw_orders"


def test_two_models_on_one_relation_are_refused_naming_both_nodes_and_files() -> None:
    manifest = _manifest(
        {
            "model.p.orders": {"alias": "orders", "original_file_path": "models/orders.sql"},
            "model.p.orders_copy": {"alias": "orders", "original_file_path": "models/legacy/orders_copy.sql"},
            "model.p.other": {"alias": "other"},
            "snapshot.p.other_snap": {"alias": "other", "original_file_path": "snapshots/other_snap.sql"},
        }
    )
    with pytest.raises(DuplicateAssetError) as info:
        build_asset_graph(manifest=manifest)
    message = str(info.value)
    for text in (
        "raw.orders",
        "model.p.orders (models/orders.sql)",
        "model.p.orders_copy (models/legacy/orders_copy.sql)",
    ):
        assert text in message
    assert "raw.other" in message and "snapshot.p.other_snap" in message, "every conflict is listed at once"


def test_a_singular_test_on_no_model_is_a_check_of_its_package() -> None:
    manifest = _manifest({"test.p.assert_rows": {"depends_on": {"nodes": []}, "original_file_path": "tests/a.sql"}})
    graph = build_asset_graph(manifest=manifest)
    check = graph.checks_by_id()["test.p.assert_rows"]
    assert check.asset_key is None and check.id == "p:assert_rows" and check.kind == "dbt_test"


def test_source_freshness_gates_only_where_it_is_asked_to() -> None:
    freshness = {"loaded_at_field": "at", "freshness": {"error_after": {"count": 1, "period": "hour"}}}
    manifest = _manifest(
        {},
        {
            "source.p.ext.a": {"name": "a", "source_name": "ext", **freshness},
            "source.p.lake.b": {"name": "b", "source_name": "lake", "loader": "dlt", **freshness},
            "source.p.ext.c": {
                "name": "c",
                "source_name": "ext",
                "meta": {"headwater": {"freshness": "error"}},
                **freshness,
            },
        },
    )
    severity = {c.subject: c.severity.value for c in build_asset_graph(manifest=manifest).checks}
    assert severity == {"raw.a": "warn", "raw.b": "error", "raw.c": "error"}


def test_a_disabled_node_left_in_the_manifests_nodes_is_never_part_of_the_graph() -> None:
    """dbt's selector skips a node whose ``config.enabled`` is false even when it sits in ``nodes`` (a partial parse
    can leave one there): it is never selected, planned or mirrored, so a clean project cannot fail on it."""
    manifest = _manifest(
        {
            "seed.p.regions": {"alias": "regions", "resource_type": "seed"},
            "test.p.unique_regions_id": {
                "resource_type": "test",
                "depends_on": {"nodes": ["seed.p.regions"]},
                "attached_node": "seed.p.regions",
                "config": {"enabled": False},
            },
            "test.p.not_null_regions_id": {
                "resource_type": "test",
                "depends_on": {"nodes": ["seed.p.regions"]},
                "attached_node": "seed.p.regions",
                "config": {"enabled": "False"},
            },
            "model.p.off": {"alias": "off", "config": {"enabled": False}},
        }
    )
    graph = build_asset_graph(manifest=manifest)
    assert set(graph.nodes) == {"seed.p.regions"}
    assert graph.checks == () and [str(k) for k in graph.specs] == ["raw.regions"]


def test_a_config_that_is_not_a_mapping_is_a_manifest_error_naming_the_node() -> None:
    """A hand-edited or truncated manifest whose node has ``config: true`` fails with the node and the fix, never an
    ``AttributeError`` from reading ``enabled`` (found by tests/reliability/test_fuzz.py)."""
    manifest = _manifest(
        {
            "seed.p.regions": {"alias": "regions", "resource_type": "seed"},
            "test.p.unique_regions_id": {"resource_type": "test", "config": True},
        }
    )
    with pytest.raises(ManifestError, match=r"(?s)dbt parse.*test\.p\.unique_regions_id"):
        build_asset_graph(manifest=manifest)


def test_reading_a_manifest_never_changes_the_translator_it_is_given() -> None:
    """One project translator serves every reader and run: reading a manifest binds its macros on a copy."""
    from assets.dbt_manifest import DbtTranslator, read_manifest

    translator = DbtTranslator().bound(vars={"x": 1}, env={"X": "p1"})
    manifest = {**_manifest({"seed.p.regions": {"alias": "regions", "resource_type": "seed"}}), "macros": {"m": {}}}
    read_manifest(manifest, translator)
    assert translator.macros == {} and translator.vars == {"x": 1} and translator.env == {"X": "p1"}
    bound = translator.bound(macros={"m": {}})
    assert bound is not translator and bound.macros == {"m": {}} and bound.vars == {"x": 1}
