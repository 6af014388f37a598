from __future__ import annotations

import pytest

from assets import SelectionError, build_asset_graph, select
from ingestion import ingestion_specs

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`


@pytest.fixture(scope="module")
def graph(manifest: dict):
    return build_asset_graph(manifest=manifest, ingestion=ingestion_specs())


def names(keys) -> set[str]:
    return {str(k) for k in keys}


def test_everything_by_default(graph) -> None:
    assert select(graph) == set(graph.specs)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("orders", {"marts.orders"}),
        ("marts.orders", {"marts.orders"}),
        (
            "+daily_revenue",
            {
                "marts.daily_revenue",
                "marts.orders",
                "intermediate.int_orders__items_summed",
                "intermediate.int_payments__summed",
                "staging.stg_shop__orders",
                "staging.stg_shop__order_items",
                "staging.stg_shop__payments",
                "staging.stg_shop__customers",
                "raw_shop.orders",
                "raw_shop.order_items",
                "raw_shop.payments",
                "raw_shop.customers",
            },
        ),
        ("1+daily_revenue", {"marts.daily_revenue", "marts.orders"}),
        ("marketing_roi+", {"marts.marketing_roi", "exposures.revenue_dashboard"}),
        ("source:raw_marketing", {"raw_marketing.ad_spend"}),
        ("source:raw_shop.payments+1", {"raw_shop.payments", "staging.stg_shop__payments"}),
        ("resource_type:seed", {"seeds.channels"}),
        ("resource_type:snapshot", {"snapshots.customers_snapshot"}),
        ("config.materialized:incremental", {"marts.order_items"}),
        ("path:models/staging/marketing", {"staging.stg_marketing__ad_spend", "raw_marketing.ad_spend"}),
        ("staging.marketing", {"staging.stg_marketing__ad_spend"}),
        ("key:raw_shop.orders", {"raw_shop.orders"}),
        ("raw_shop.orders", set()),  # as in dbt: a source is not selected by a dotted name (use source: or key:)
        ("kind:dlt,source:raw_marketing", {"raw_marketing.ad_spend"}),
        ("layer:marts,config.materialized:incremental", {"marts.order_items"}),
        ("key:seeds.channels key:snapshots.customers_snapshot", {"seeds.channels", "snapshots.customers_snapshot"}),
        (
            "stg_shop__*,config.materialized:view",
            {
                "staging.stg_shop__orders",
                "staging.stg_shop__order_items",
                "staging.stg_shop__payments",
                "staging.stg_shop__customers",
                "staging.stg_shop__products",
            },
        ),
    ],
)
def test_expressions(graph, expression: str, expected: set[str]) -> None:
    assert names(select(graph, expression)) == expected


def test_at_operator_adds_ancestors_of_descendants(graph) -> None:
    chosen = names(select(graph, "@stg_marketing__ad_spend"))
    assert {"marts.marketing_roi", "marts.orders", "seeds.channels", "raw_shop.orders"} <= chosen


def test_exclude(graph) -> None:
    chosen = names(select(graph, "layer:marts", exclude="orders customers"))
    assert chosen == {"marts.daily_revenue", "marts.marketing_roi", "marts.order_items"}


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("colour:red", "unknown selection method 'colour'"),
        ("tag:", "needs a value"),
        ("a,,b", "empty criterion"),
        ("@orders+", "cannot"),
        ("resource_type:table", "invalid resource_type"),
        ("state:modified", "--state"),
        ("source:a.b.c.d", "invalid source selector"),
        ("version:newest", "invalid version selector"),
        ("test_type:bogus", "invalid test_type selector"),
    ],
)
def test_bad_expressions_say_why(graph, expression: str, message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        select(graph, expression)


def test_state_methods_are_answered_by_the_lookup_and_combined_with_the_grammar(graph) -> None:
    asked = []

    def lookup(method: str, value: str) -> set[str]:
        asked.append((method, value))
        return {"model.headwater.stg_marketing__ad_spend", "model.elsewhere.not_in_this_graph"}

    direct = names(select(graph, "state:modified", state=lookup))
    assert direct == {"staging.stg_marketing__ad_spend"}, "a unique id not in the graph is ignored"
    downstream = names(select(graph, "state:modified.body+", state=lookup))
    assert {"staging.stg_marketing__ad_spend", "marts.marketing_roi"} <= downstream
    assert "marts.orders" not in downstream
    assert ("state", "modified.body") in asked
    assert names(select(graph, "state:modified,tag:nothing_has_this", state=lookup)) == set()


def test_a_state_lookup_in_doubt_matches_every_node(graph) -> None:
    assert select(graph, "state:new", state=lambda method, value: None) == set(graph.specs)


@pytest.mark.parametrize("expression", ["state:", "state.x:modified", "source_status:"])
def test_malformed_state_criteria_are_named(graph, expression: str) -> None:
    with pytest.raises(SelectionError, match="expected e.g. state:modified"):
        select(graph, expression, state=lambda method, value: set())
