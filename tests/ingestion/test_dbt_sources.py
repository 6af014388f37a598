"""Generated dbt sources: what the dlt schema says, idempotent, and equal to the committed files."""

from __future__ import annotations

from pathlib import Path

import dlt
import pytest
import yaml

from ingestion import SOURCES, SourcePaths, render_sources_yml, run_source, stored_schema, write_sources_yml
from ingestion.marketing.simulator import write_spend
from ingestion.shop.simulator import create_shop
from tests.conftest import REPO


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("sources")
    state = create_shop(tmp / "shop.db", scale=0.1)
    write_spend(tmp / "landing", seed=state.seed, scale=state.scale, days=range(state.day + 1))
    paths = SourcePaths(shop_db=tmp / "shop.db", marketing_landing=tmp / "landing")
    destination = dlt.destinations.duckdb(str(tmp / "wh.duckdb"))
    out = {}
    for name, definition in SOURCES.items():
        run_source(definition, paths, destination, target="t", pipelines_dir=tmp / "pipes")
        out[name] = stored_schema(definition, target="t", pipelines_dir=tmp / "pipes")
    return out


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_generated_file_equals_the_committed_one(schemas: dict, name: str) -> None:
    definition = SOURCES[name]
    committed = (REPO / "dbt_project" / definition.sources_yml).read_text()
    assert render_sources_yml(definition, schemas[name]) == committed, (
        f"{definition.sources_yml} is stale: run `headwater sources` and commit the result"
    )


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_source_names_types_tests_and_freshness(schemas: dict, name: str) -> None:
    definition = SOURCES[name]
    document = yaml.safe_load(render_sources_yml(definition, schemas[name]))
    (source,) = document["sources"]
    assert source["name"] == source["schema"] == definition.dataset
    assert "loaded_at_field" in source["config"] and "freshness" in source["config"]
    assert sorted(t["name"] for t in source["tables"]) == sorted(definition.tables)
    for table in source["tables"]:
        assert table["description"]
        columns = {c["name"]: c for c in table["columns"]}
        assert "_dlt_load_id" in columns
        assert all(c.get("data_type") for c in columns.values())
        assert all(c.get("description") for c in columns.values()), table["name"]
        tested = [c for c in columns.values() if c.get("data_tests")]
        assert tested, f"{table['name']}: primary key columns must be tested"


def test_write_is_idempotent(schemas: dict, tmp_path: Path) -> None:
    definition = SOURCES["shop"]
    path, changed = write_sources_yml(definition, schemas["shop"], tmp_path)
    assert changed and path.exists()
    assert write_sources_yml(definition, schemas["shop"], tmp_path) == (path, False)


def test_a_partial_load_keeps_the_tables_it_did_not_load(schemas: dict, tmp_path: Path) -> None:
    """`materialize +marts.orders` on a fresh target loads some shop tables only: the others must stay."""
    definition = SOURCES["shop"]
    path, _ = write_sources_yml(definition, schemas["shop"], tmp_path)
    full = path.read_text()
    partial = schemas["shop"].clone()
    partial.tables.pop("products")
    assert "products" not in {t["name"] for t in partial.data_tables()}
    assert write_sources_yml(definition, partial, tmp_path) == (path, False)
    assert path.read_text() == full
