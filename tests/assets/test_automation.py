from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from assets import AssetKey, AssetKind, AssetSpec, build_asset_graph
from assets.automation import AutomationError, resolve_automations
from assets.run_log import Materialization, stale_reasons

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`


def spec(key: str, *deps: str, kind: AssetKind = AssetKind.PYTHON, **meta) -> AssetSpec:
    return AssetSpec(
        key=AssetKey.parse(key),
        kind=kind,
        unique_id=f"{kind.value}.{key}",
        deps=tuple(AssetKey.parse(d) for d in deps),
        code_version="v1",
        meta=meta,
        path=f"models/{key.split('.')[-1]}.sql",
    )


def k(text: str) -> AssetKey:
    return AssetKey.parse(text)


GRAPH = build_asset_graph(
    python_assets=[
        spec("raw.a", kind=AssetKind.DLT),
        spec("raw.x", kind=AssetKind.DLT),
        spec("stg.b", "raw.a"),
        spec("marts.c", "stg.b", "raw.x"),
        spec("marts.d", "raw.x"),
    ]
)


def test_a_headwater_yml_automation_listens_to_what_its_assets_read_from_outside_the_set() -> None:
    configured = {"downstream": {"select": "key:stg.b key:marts.c", "on_upstream_update": {"require": "all"}}}
    (found,) = resolve_automations(GRAPH, configured)
    assert found.assets == (k("marts.c"), k("stg.b"))
    assert found.upstream == (k("raw.a"), k("raw.x")), "stg.b is inside the set: not an upstream"
    assert found.policy.require == "all" and found.policy.within == timedelta(minutes=5)
    assert found.origin == "headwater.yml: automation.downstream"


def test_pending_only_when_the_run_left_a_reader_of_the_asset_unbuilt() -> None:
    (found,) = resolve_automations(GRAPH, {"all": {"select": "key:stg.b key:marts.c", "on_upstream_update": True}})
    assert found.pending_after(GRAPH, k("raw.a"), {k("raw.a")})
    assert not found.pending_after(GRAPH, k("raw.a"), {k("raw.a"), k("stg.b"), k("marts.c")})
    assert found.pending_after(GRAPH, k("raw.a"), {k("stg.b")}), "marts.c reads raw.a through stg.b"
    assert not found.pending_after(GRAPH, k("stg.b"), set()), "stg.b is in the set, not upstream of it"


def test_dbt_meta_policies_group_the_assets_that_share_one() -> None:
    policy = {"on_upstream_update": True, "max_age": "6h"}
    graph = build_asset_graph(
        python_assets=[
            spec("raw.a", kind=AssetKind.DLT),
            spec("stg.b", "raw.a", automation=policy),
            spec("stg.e", "raw.a", automation=dict(policy)),
            spec("marts.c", "stg.b", automation={"on_cron": "0 6 * * *", "name": "morning"}),
        ]
    )
    found = {a.name: a for a in resolve_automations(graph, None)}
    assert set(found) == {"morning", next(n for n in found if n.startswith("dbt-"))}
    grouped = next(a for n, a in found.items() if n.startswith("dbt-"))
    assert grouped.assets == (k("stg.b"), k("stg.e")) and grouped.selection == "key:stg.b key:stg.e"
    assert grouped.policy.max_age == timedelta(hours=6)
    assert found["morning"].upstream == (k("stg.b"),)


def test_every_problem_is_named_at_once() -> None:
    configured = {
        "Bad Name": {"select": "stg.b", "on_missing": True},
        "no-select": {"on_missing": True},
        "nothing": {"select": "key:raw.a"},
        "empty": {"select": "key:nope.nope", "on_missing": True},
        "typos": {"select": "key:stg.b", "on_upstream_update": {"require": "most", "within": "soon"}, "max_ag": 1},
        "cron": {"select": "key:stg.b", "on_cron": "every day"},
    }
    with pytest.raises(AutomationError) as caught:
        resolve_automations(GRAPH, configured)
    message = str(caught.value)
    for expected in (
        "automation.Bad Name: names are lower case",
        "automation.no-select: needs select:",
        "automation.nothing: says nothing to react to",
        "automation.empty: select 'key:nope.nope' matches no asset",
        "unknown key(s) max_ag",
        "require must be any or all, not 'most'",
        "within 'soon' is not a duration",
        "on_cron 'every day' is not a cron expression",
    ):
        assert expected in message, message


def test_an_automation_max_age_makes_an_asset_stale_as_meta_max_age_does() -> None:
    graph = build_asset_graph(python_assets=[spec("s.a", automation={"max_age": "1h", "on_upstream_update": True})])
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    done = Materialization(
        "s.a", "r", "success", 1, now - timedelta(hours=3), now - timedelta(hours=2), code_version="v1"
    )
    assert stale_reasons(graph, {"s.a": done}, now=now) == {k("s.a"): "older than its max_age 1h"}
    recent = Materialization(
        "s.a", "r", "success", 1, now - timedelta(minutes=9), now - timedelta(minutes=8), code_version="v1"
    )
    assert stale_reasons(graph, {"s.a": recent}, now=now) == {}
