from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from assets import AssetKey, AssetKind, AssetSpec, build_asset_graph
from assets.run_log import Materialization, stale_reasons

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`

T0 = datetime(2026, 1, 1, 12, 0)


def spec(key: str, *deps: str, code: str = "v1") -> AssetSpec:
    return AssetSpec(
        key=AssetKey.parse(key),
        kind=AssetKind.DBT_MODEL,
        deps=tuple(AssetKey.parse(d) for d in deps),
        code_version=code,
    )


def done(key: str, minutes: int, code: str = "v1") -> Materialization:
    return Materialization(key, "r", "success", 1, T0, T0 + timedelta(minutes=minutes), code_version=code)


def test_stale_when_never_run_upstream_newer_or_code_changed() -> None:
    graph = build_asset_graph(
        python_assets=[spec("s.a"), spec("s.b", "s.a"), spec("s.c", "s.b", code="v2"), spec("s.d")]
    )
    latest = {m.asset_key: m for m in (done("s.a", 10), done("s.b", 5), done("s.c", 20, code="v1"))}
    reasons = stale_reasons(graph, latest)
    assert reasons == {
        AssetKey.parse("s.b"): "upstream s.a materialized since",
        AssetKey.parse("s.c"): "code changed since last materialization",
        AssetKey.parse("s.d"): "never materialized",
    }


def test_fresh_graph_has_no_stale_assets() -> None:
    graph = build_asset_graph(python_assets=[spec("s.a"), spec("s.b", "s.a")])
    assert stale_reasons(graph, {"s.a": done("s.a", 1), "s.b": done("s.b", 2)}) == {}


def _with_meta(key: str, **meta) -> AssetSpec:
    from dataclasses import replace

    return replace(spec(key), meta=meta)


def test_an_unfinished_last_attempt_or_a_failed_blocking_check_is_stale_even_after_an_older_success() -> None:
    from assets.run_log import CheckRecord, stale_from_log

    graph = build_asset_graph(python_assets=[spec("s.a"), spec("s.b"), spec("s.c")])
    successful = {k: done(k, 1) for k in ("s.a", "s.b", "s.c")}
    latest = {**successful, "s.a": Materialization("s.a", "run-2-abcdef", "skipped", 0, None, None)}
    checks = {
        ("s.b", "not_null"): (CheckRecord("s.b", "not_null", "r", "error", "fail", 3), None),
        ("s.c", "warned"): (CheckRecord("s.c", "warned", "r", "warn", "fail", 3), None),
    }
    assert stale_from_log(graph, latest, successful, checks) == {
        AssetKey.parse("s.a"): "last attempt skipped (run run-2-ab)",
        AssetKey.parse("s.b"): "a blocking check on it failed in its last run",
    }, "a failed warn check does not make s.c stale"


def test_due_by_its_own_policy_always_or_past_max_age() -> None:
    graph = build_asset_graph(
        python_assets=[
            _with_meta("s.clock", always=True),
            _with_meta("s.daily", max_age="24h"),
            _with_meta("s.hourly", max_age="1h"),
            _with_meta("s.typo", max_age="soon"),
        ]
    )
    successful = {k: done(k, 0) for k in ("s.clock", "s.daily", "s.hourly", "s.typo")}
    now = (T0 + timedelta(hours=3)).replace(tzinfo=UTC)
    reasons = {str(k): v for k, v in stale_reasons(graph, successful, now=now).items()}
    assert reasons == {
        "s.clock": "always rebuilt (meta.headwater.always)",
        "s.hourly": "older than its max_age 1h",
        "s.typo": "max_age 'soon' is not a duration (write e.g. 24h): rebuilt until it is",
    }, "never skip on doubt: an unreadable max_age builds"


def test_a_dbt_nodes_code_version_moves_with_its_sql_config_and_any_macro_it_calls_transitively() -> None:
    from assets.code_versions import code_version_of

    macros = {
        "macro.p.cents": {"macro_sql": "{{ x }} * 100", "depends_on": {"macros": ["macro.p.round2"]}},
        "macro.p.round2": {"macro_sql": "round({{ x }}, 2)", "depends_on": {"macros": []}},
    }
    node = {
        "checksum": {"checksum": "abc"},
        "config": {"materialized": "table", "meta": {"owner": "x"}},
        "depends_on": {"macros": ["macro.p.cents"]},
    }
    base = code_version_of(node, macros)
    assert code_version_of({**node, "config": {"materialized": "table", "meta": {"owner": "y"}}}, macros) == base
    assert code_version_of({**node, "config": {"materialized": "view"}}, macros) != base
    assert code_version_of({**node, "checksum": {"checksum": "abd"}}, macros) != base
    deeper = {**macros, "macro.p.round2": {"macro_sql": "round({{ x }}, 4)", "depends_on": {"macros": []}}}
    assert code_version_of(node, deeper) != base, "a macro two calls away changed"


def test_a_var_change_moves_the_code_version_of_nodes_that_read_vars_and_no_other() -> None:
    from assets.code_versions import code_version_of

    macros = {"macro.p.since": {"macro_sql": "where d >= '{{ var(\"start\") }}'", "depends_on": {"macros": []}}}
    reader = {
        "checksum": {"checksum": "a"},
        "raw_code": "select * from t {{ since() }}",
        "depends_on": {"macros": ["macro.p.since"]},
    }
    plain = {"checksum": {"checksum": "b"}, "raw_code": "select 1", "depends_on": {"macros": []}}
    assert code_version_of(reader, macros, {"start": "2026-01-01"}) != code_version_of(
        reader, macros, {"start": "2026-02-01"}
    )
    assert code_version_of(plain, macros, {"start": "2026-01-01"}) == code_version_of(
        plain, macros, {"start": "2026-02-01"}
    )
