"""Column lineage over hand-written SQL: CTEs, joins, aggregates, ``select *``, and what it cannot read."""

from __future__ import annotations

import pytest

from assets.lineage import ColumnRef, LineageError, Relation, build_column_lineage, relations_from_manifest

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`

RAW_ORDERS = Relation("raw.orders", '"wh"."raw"."orders"', ("id", "customer_id", "status", "amount"))
RAW_CUSTOMERS = Relation("raw.customers", '"wh"."raw"."customers"', ("id", "name", "country"))
STG_ORDERS = Relation(
    "staging.orders",
    '"wh"."staging"."orders"',
    sql="""
        with source as (select * from "wh"."raw"."orders"),
        renamed as (select id as order_id, customer_id, lower(trim(status)) as status, amount from source)
        select * from renamed
    """,
)
MART = Relation(
    "marts.customers",
    '"wh"."marts"."customers"',
    sql="""
        with orders as (select * from "wh"."staging"."orders")
        select c.id as customer_id, c.name, count(*) as order_count,
               sum(case when o.status <> 'returned' then o.amount else 0 end) as revenue,
               1 as version
        from "wh"."raw"."customers" as c
        join orders as o on o.customer_id = c.id
        group by c.id, c.name
    """,
)


def _lineage(*relations: Relation):
    return build_column_lineage(relations, "duckdb")


def test_select_star_through_ctes_expands_with_the_known_schema() -> None:
    graph = _lineage(MART, STG_ORDERS, RAW_ORDERS, RAW_CUSTOMERS)  # order given: dependencies sort it
    assert graph.columns["staging.orders"] == ("order_id", "customer_id", "status", "amount")
    assert graph.parents(ColumnRef("staging.orders", "order_id")) == (ColumnRef("raw.orders", "id"),)
    assert graph.origins[ColumnRef("staging.orders", "status")].expression == "LOWER(TRIM(source.status))"


def test_aggregate_over_a_join_reads_every_column_it_uses() -> None:
    graph = _lineage(RAW_ORDERS, RAW_CUSTOMERS, STG_ORDERS, MART)
    revenue = ColumnRef("marts.customers", "revenue")
    assert graph.parents(revenue) == (ColumnRef("staging.orders", "amount"), ColumnRef("staging.orders", "status"))
    assert graph.sources(revenue) == [ColumnRef("raw.orders", "amount"), ColumnRef("raw.orders", "status")]
    assert graph.sources(ColumnRef("marts.customers", "name")) == [ColumnRef("raw.customers", "name")]
    assert graph.parents(ColumnRef("marts.customers", "version")) == ()  # a constant reads nothing


def test_downstream_tree_reaches_the_mart() -> None:
    graph = _lineage(RAW_ORDERS, RAW_CUSTOMERS, STG_ORDERS, MART)
    tree = graph.downstream(ColumnRef("raw.orders", "amount"))
    assert tree["column"] == "raw.orders.amount"
    (stg,) = tree["downstream"]
    assert stg["column"] == "staging.orders.amount"
    assert [c["column"] for c in stg["downstream"]] == ["marts.customers.revenue"]


def test_resolve_names_the_columns_that_exist() -> None:
    graph = _lineage(RAW_ORDERS, RAW_CUSTOMERS, STG_ORDERS, MART)
    assert graph.resolve("marts.customers.REVENUE") == ColumnRef("marts.customers", "revenue")
    with pytest.raises(LineageError, match="marts.customers has no column 'profit'; its columns: customer_id"):
        graph.resolve("marts.customers.profit")
    with pytest.raises(LineageError, match="no lineage for asset 'marts.nothing'"):
        graph.resolve("marts.nothing.x")


def test_unparseable_model_is_reported_and_the_rest_still_resolves() -> None:
    broken = Relation("marts.broken", '"wh"."marts"."broken"', sql="select from where (((")
    graph = _lineage(RAW_ORDERS, RAW_CUSTOMERS, STG_ORDERS, MART, broken)
    assert "sqlglot cannot" in graph.problems["marts.broken"]
    assert graph.sources(ColumnRef("marts.customers", "revenue"))
    with pytest.raises(LineageError, match="sqlglot cannot"):
        graph.resolve("marts.broken.x")


def test_relations_from_a_compiled_manifest() -> None:
    manifest = {
        "metadata": {"adapter_type": "duckdb"},
        "sources": {"source.p.raw.orders": {"relation_name": '"wh"."raw"."orders"', "columns": {"id": {}}}},
        "nodes": {
            "seed.p.channels": {"resource_type": "seed", "relation_name": '"wh"."seeds"."channels"', "columns": {}},
            "model.p.orders": {
                "resource_type": "model",
                "relation_name": '"wh"."staging"."orders"',
                "compiled_code": 'select id from "wh"."raw"."orders"',
            },
            "snapshot.p.snap": {
                "resource_type": "snapshot",
                "relation_name": '"wh"."snapshots"."snap"',
                "compiled_code": 'select id from "wh"."raw"."orders"',
            },
            "test.p.not_null": {"resource_type": "test", "compiled_code": "select 1"},
        },
    }
    key_of = {
        "source.p.raw.orders": "raw.orders",
        "seed.p.channels": "seeds.channels",
        "model.p.orders": "staging.orders",
        "snapshot.p.snap": "snapshots.snap",
    }
    relations = relations_from_manifest(manifest, key_of, {"seed.p.channels": ["channel", "name"]})
    graph = build_column_lineage(relations, "duckdb")
    assert graph.columns["seeds.channels"] == ("channel", "name")
    assert graph.columns["snapshots.snap"][-1] == "dbt_valid_to"
    assert graph.sources(ColumnRef("snapshots.snap", "id")) == [ColumnRef("raw.orders", "id")]
