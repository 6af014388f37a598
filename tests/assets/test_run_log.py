from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from assets import AssetKey, AssetKind, AssetSpec, CheckSpec, Severity, build_asset_graph
from assets.run_log import Materialization, stale_reasons

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`

T0 = datetime(2026, 1, 1, 12, 0)


def spec(key: str, *deps: str, code: str = "v1") -> AssetSpec:
    """A model; a root says it reads nothing (``meta.headwater.inputs: none``), else its inputs would be unknown."""
    return AssetSpec(
        key=AssetKey.parse(key),
        kind=AssetKind.DBT_MODEL,
        deps=tuple(AssetKey.parse(d) for d in deps),
        code_version=code,
        meta={} if deps else {"inputs": "none"},
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

    return replace(spec(key), meta={"inputs": "none", **meta})


def test_an_unfinished_last_attempt_or_a_failed_blocking_check_is_stale_even_after_an_older_success() -> None:
    from assets.run_log import CheckRecord, stale_from_log

    b, c = AssetKey.parse("s.b"), AssetKey.parse("s.c")
    tests = [CheckSpec(b, "not_null"), CheckSpec(c, "warned", Severity.WARN)]
    graph = build_asset_graph(python_assets=[spec("s.a"), spec("s.b"), spec("s.c")], checks=tests)
    successful = {k: done(k, 1) for k in ("s.a", "s.b", "s.c")}
    latest = {**successful, "s.a": Materialization("s.a", "run-2-abcdef", "skipped", 0, None, None)}
    checks = {
        ("s.b", "not_null"): (CheckRecord("s.b", "not_null", "r", "error", "fail", 3), None),
        ("s.c", "warned"): (CheckRecord("s.c", "warned", "r", "warn", "fail", 3), None),
        ("s.c", "deleted_since"): (CheckRecord("s.c", "deleted_since", "r", "error", "fail", 3), None),
    }
    assert stale_from_log(graph, latest, successful, checks) == {
        AssetKey.parse("s.a"): "last attempt skipped (run run-2-ab)",
        AssetKey.parse("s.b"): "a blocking check on it failed in its last run",
    }, "a failed warn check does not make s.c stale, nor a failed check the project no longer has"


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


def test_an_env_var_read_by_name_is_part_of_the_code_version_and_a_computed_name_is_unknown() -> None:
    from assets.code_versions import code_version_of

    node = {"checksum": {"checksum": "a"}, "raw_code": 'select \'{{ env_var("REGION", "eu") }}\'', "depends_on": {}}
    assert code_version_of(node, {}, env={"REGION": "eu"}) != code_version_of(node, {}, env={"REGION": "us"})
    assert code_version_of(node, {}, env={"REGION": "eu", "OTHER": "1"}) == code_version_of(
        node, {}, env={"REGION": "eu"}
    ), "only the variables it reads count"
    computed = {**node, "raw_code": "select '{{ env_var(prefix ~ \"_REGION\") }}'"}
    assert code_version_of(computed, {}, env={}) is None, "a name computed at render time: unknown, rebuilt"
    big_seed = {"checksum": {"name": "path", "checksum": "seeds/big.csv"}, "depends_on": {}}
    assert code_version_of(big_seed, {}) is None, "dbt does not hash a seed over 1 MiB: its contents are unknown"


def test_an_unknown_code_version_a_missing_relation_and_a_stale_upstream_each_make_an_asset_stale() -> None:
    graph = build_asset_graph(
        python_assets=[spec("s.a"), spec("s.b", "s.a"), spec("s.c", "s.b"), spec("s.u", code=None), spec("s.r")]
    )
    successful = {k: done(k, 1) for k in ("s.a", "s.b", "s.c", "s.u", "s.r")}
    successful["s.a"] = done("s.a", 1, code="v0")
    present = {"s.a", "s.b", "s.c", "s.u"}  # s.r was dropped in the warehouse
    reasons = {str(k): v for k, v in stale_reasons(graph, successful, present=present).items()}
    assert reasons["s.a"] == "code changed since last materialization"
    assert reasons["s.b"] == "upstream s.a is stale" and reasons["s.c"] == "upstream s.b is stale"
    assert reasons["s.u"].startswith("its code version cannot be known")
    assert reasons["s.r"] == "its relation s.r is not in the warehouse"
    recorded_none = {**successful, "s.a": done("s.a", 1, code=None)}
    assert stale_reasons(graph, recorded_none)[AssetKey.parse("s.a")] == (
        "its last materialization recorded no code version"
    )
    assert AssetKey.parse("s.a") not in stale_reasons(graph, successful, done=[AssetKey.parse("s.a")])


def test_a_source_headwater_does_not_load_makes_its_readers_stale_when_its_loaded_at_moved_or_cannot_tell() -> None:
    from dataclasses import replace

    watched = AssetSpec(AssetKey.parse("ext.events"), AssetKind.SOURCE, config={"loaded_at_field": "loaded_at"})
    blind = AssetSpec(AssetKey.parse("ext.refs"), AssetKind.SOURCE)
    graph = build_asset_graph(
        python_assets=[watched, blind, spec("s.reads_events", "ext.events"), spec("s.reads_refs", "ext.refs")]
    )
    successful = {k: done(k, 10) for k in ("s.reads_events", "s.reads_refs")}
    observed = replace(done("ext.events", 5), status="observed", data_version="2026-01-01 11:00")
    reasons = {str(k): v for k, v in stale_reasons(graph, {**successful, "ext.events": observed}).items()}
    assert reasons == {
        "s.reads_refs": "reads source ext.refs, which has no loaded_at_field: nothing can tell that it did not change"
    }, "an observation older than the reader's build leaves it fresh"
    moved = replace(observed, ended_at=T0 + timedelta(minutes=20), message="its loaded_at moved to 2026-01-01 12:00")
    reasons = {str(k): v for k, v in stale_reasons(graph, {**successful, "ext.events": moved}).items()}
    assert reasons["s.reads_events"] == "source ext.events: its loaded_at moved to 2026-01-01 12:00"
    assert "s.reads_events" in {str(k) for k in stale_reasons(graph, successful)}, "never observed: stale"


def test_a_reader_of_an_ephemeral_model_changes_code_version_with_it() -> None:
    def ephemeral(code: str) -> AssetSpec:
        return AssetSpec(
            AssetKey.parse("s.eph"), AssetKind.DBT_MODEL, code_version=code, config={"materialized": "ephemeral"}
        )

    reader = spec("s.reader", "s.eph")
    one = build_asset_graph(python_assets=[ephemeral("e1"), reader]).specs[AssetKey.parse("s.reader")]
    two = build_asset_graph(python_assets=[ephemeral("e2"), reader]).specs[AssetKey.parse("s.reader")]
    assert one.code_version != two.code_version != reader.code_version


def test_upstream_data_is_seen_through_an_ephemeral_model() -> None:
    """Found by the property test: a view rebuilt under an ephemeral model left the ephemeral's reader fresh."""
    eph = AssetSpec(
        AssetKey.parse("s.eph"),
        AssetKind.DBT_MODEL,
        deps=(AssetKey.parse("s.view"), AssetKey.parse("ext.events")),
        code_version="e",
        config={"materialized": "ephemeral"},
    )
    source = AssetSpec(AssetKey.parse("ext.events"), AssetKind.SOURCE, config={"loaded_at_field": "loaded_at"})
    graph = build_asset_graph(python_assets=[source, spec("s.view"), eph, spec("s.mart", "s.eph")])
    mart = graph.specs[AssetKey.parse("s.mart")]
    from dataclasses import replace

    observed = replace(done("ext.events", 1), status="observed", data_version="1")
    successful = {
        "s.view": done("s.view", 1),
        "s.mart": done("s.mart", 5, code=mart.code_version),
        "ext.events": observed,
    }
    assert stale_reasons(graph, successful) == {}
    rebuilt = {**successful, "s.view": done("s.view", 9)}
    assert stale_reasons(graph, rebuilt) == {AssetKey.parse("s.mart"): "upstream s.view materialized since"}
    moved = {**successful, "ext.events": replace(observed, ended_at=T0 + timedelta(minutes=9), message="moved")}
    assert stale_reasons(graph, moved) == {AssetKey.parse("s.mart"): "source ext.events: moved"}
    assert stale_reasons(graph, {**successful, "s.view": done("s.view", 1, code="v0")}) == {
        AssetKey.parse("s.view"): "code changed since last materialization",
        AssetKey.parse("s.mart"): "upstream s.view is stale",
    }


def test_a_var_whose_value_dbt_renders_is_hashed_rendered_and_an_unrenderable_one_makes_readers_unknown() -> None:
    """Issue 29 finding 1: the code version holds what dbt renders (the value of X for
    ``x: "{{ env_var('X', 'p1') }}"``), never the text of the YAML, which does not change."""
    from assets.code_versions import Unrendered, node_code_version

    reader = {"checksum": {"checksum": "a"}, "raw_code": "select '{{ var(\"x\") }}' as x", "depends_on": {}}
    p1, p2 = node_code_version(reader, {}, {"x": "p1"}), node_code_version(reader, {}, {"x": "p2"})
    assert p1.value and p2.value and p1.value != p2.value
    broken = node_code_version(reader, {}, {"x": Unrendered("{{ my_macro() }}", "UndefinedMacroError: my_macro")})
    assert broken.value is None and broken.unknown == (
        "var 'x' cannot be rendered as dbt would (UndefinedMacroError: my_macro)"
    )
    nested = node_code_version(reader, {}, {"pkg": {"x": Unrendered("{{ y() }}", "why")}})
    assert nested.value is None and "'pkg.x'" in nested.unknown, "a package's vars are vars too"
    plain = {"checksum": {"checksum": "b"}, "raw_code": "select 1", "depends_on": {}}
    assert node_code_version(plain, {}, {"x": Unrendered("{{ y() }}", "why")}).value is not None


def test_an_enforced_contracts_constraints_are_part_of_the_models_code_version() -> None:
    """Adding a not_null constraint to an enforced contract rebuilds the model, as dbt would (finding 2)."""
    from assets.code_versions import code_version_of

    model = {
        "resource_type": "model",
        "checksum": {"checksum": "a"},
        "config": {"contract": {"enforced": True}},
        "columns": {"id": {"name": "id", "data_type": "integer", "constraints": []}},
        "depends_on": {},
    }
    constrained = {**model, "columns": {"id": {"data_type": "integer", "constraints": [{"type": "not_null"}]}}}
    assert code_version_of(model, {}) != code_version_of(constrained, {})
    loose = {**model, "config": {"contract": {"enforced": False}}}
    loose_constrained = {**constrained, "config": {"contract": {"enforced": False}}}
    assert code_version_of(loose, {}) == code_version_of(loose_constrained, {}), "unenforced: dbt ignores them"


def test_a_checks_code_version_moves_with_its_arguments_config_and_macros_and_nothing_else() -> None:
    from assets.code_versions import gx_code_version, unit_test_code_version
    from assets.dbt_manifest import DbtTranslator

    translator = DbtTranslator()
    translator.macros = {"macro.dbt.test_accepted_values": {"macro_sql": "select 1", "depends_on": {"macros": []}}}
    test = {
        "resource_type": "test",
        "checksum": {"name": "none", "checksum": ""},
        "raw_code": "{{ test_accepted_values(**_dbt_generic_test_kwargs) }}",
        "test_metadata": {"name": "accepted_values", "kwargs": {"values": ["a", "b"], "column_name": "s"}},
        "config": {"severity": "ERROR", "where": None, "meta": {}},
        "depends_on": {"macros": ["macro.dbt.test_accepted_values"]},
    }
    base = translator.get_check_code_version(test)
    assert base is not None
    narrowed = {**test, "test_metadata": {"name": "accepted_values", "kwargs": {"values": ["a"], "column_name": "s"}}}
    assert translator.get_check_code_version(narrowed) != base
    assert translator.get_check_code_version({**test, "config": {**test["config"], "where": "x > 0"}}) != base
    assert translator.get_check_code_version({**test, "config": {**test["config"], "meta": {"o": 1}}}) == base
    unit = {"resource_type": "unit_test", "given": [{"rows": [{"a": 1}]}], "expect": {"rows": [{"a": 1}]}}
    assert unit_test_code_version(unit) != unit_test_code_version({**unit, "expect": {"rows": [{"a": 2}]}})
    assert gx_code_version("expect_x", {"column": "a"}, "error") != gx_code_version("expect_x", {"column": "a"}, "warn")


def _checked(*checks):
    from assets.specs import CheckSpec

    return [
        CheckSpec(AssetKey.parse(k), n, unique_id=f"{kind}.{k}.{n}", kind=kind, code_version=v)
        for k, n, kind, v in checks
    ]


def test_due_checks_are_new_changed_cut_off_skipped_errored_or_older_than_their_asset() -> None:
    """Finding 2 and 3: a check whose last result does not judge its asset as it stands runs; one whose does, not."""
    from assets.run_log import CheckRecord, due_checks

    checks = _checked(
        ("s.a", "same", "gx", "v1"),
        ("s.a", "new", "gx", "v1"),
        ("s.a", "changed", "dbt_test", "v2"),
        ("s.a", "cut", "gx", "v1"),
        ("s.a", "skip", "gx", "v1"),
        ("s.a", "errored", "gx", "v1"),
        ("s.a", "unversioned", "dbt_test", None),
        ("s.a", "legacy", "gx", "v1"),
        ("s.b", "older", "gx", "v1"),
        ("s.a", "fresh_only", "freshness", None),
    )
    graph = build_asset_graph(python_assets=[spec("s.a"), spec("s.b")], checks=checks)
    ended = T0 + timedelta(minutes=30)

    def record(name: str, status: str = "pass", version: str | None = "v1", key: str = "s.a"):
        return (key, name), (CheckRecord(key, name, "run-1-abcdef", "error", status, code_version=version), ended)

    log = dict(
        [
            record("same"),
            record("changed", version="v1"),
            record("cut", "interrupted"),
            record("skip", "skipped"),
            record("errored", "error"),
            record("unversioned"),
            record("legacy", version=None),
            record("older", key="s.b"),
        ]
    )
    successful = {"s.a": done("s.a", 10), "s.b": done("s.b", 45)}  # s.b rebuilt after its check last ran
    due = {uid.split(".", 3)[-1]: why for uid, why in due_checks(graph, log, successful=successful).items()}
    assert sorted(due) == ["changed", "cut", "errored", "legacy", "new", "older", "skip", "unversioned"]
    assert due["new"] == "new: it has never run"
    assert due["changed"] == "its definition changed since its last result (run run-1-ab)"
    assert due["cut"] == "it did not finish in run run-1-ab (interrupted)"
    assert due["older"] == "it has not run since s.b was built"
    only_b = {AssetKey.parse("s.b")}
    assert set(due_checks(graph, log, keys=only_b, successful=successful)) == {"gx.s.b.older"}
    assert not due_checks(graph, log, keys=only_b), "without a later build of s.b, its check's result stands"


def test_rows_changed_by_hand_and_unknown_inputs_make_an_asset_stale() -> None:
    """Findings 4 and 5: a relation whose data version moved since its build, and a model that names no input."""
    from dataclasses import replace

    reads_files = AssetSpec(AssetKey.parse("s.files"), AssetKind.DBT_MODEL, code_version="v1")
    declared = replace(reads_files, key=AssetKey.parse("s.calendar"), meta={"inputs": "none"})
    graph = build_asset_graph(python_assets=[spec("s.a"), spec("s.b", "s.a"), reads_files, declared])
    successful = {k: replace(done(k, 1), data_version="rows:5") for k in ("s.a", "s.b", "s.files", "s.calendar")}
    versions = {"s.a": "rows:4", "s.b": "rows:5"}
    reasons = {str(k): v for k, v in stale_reasons(graph, successful, versions=versions).items()}
    assert reasons["s.a"] == "its rows changed outside Headwater since it was built (5 rows -> 4 rows)"
    assert reasons["s.b"] == "upstream s.a is stale"
    assert reasons["s.files"].startswith("its inputs are unknown: it has no ref() or source()")
    assert "s.calendar" not in reasons, "meta.headwater.inputs: none says it reads nothing"
    unrecorded = {**successful, "s.a": done("s.a", 1)}
    assert "s.a" not in {str(k) for k in stale_reasons(graph, unrecorded, versions=versions)}, "no baseline"


def test_only_the_vars_a_node_names_are_part_of_its_code_version_unless_it_computes_a_name() -> None:
    from assets.code_versions import code_version_of

    reader = {"checksum": {"checksum": "a"}, "raw_code": "select '{{ var(\"x\") }}'", "depends_on": {}}
    assert code_version_of(reader, {}, {"x": 1, "y": 1}) == code_version_of(reader, {}, {"x": 1, "y": 2})
    assert code_version_of(reader, {}, {"x": 1}) != code_version_of(reader, {}, {"x": 2})
    assert code_version_of(reader, {}, {"pkg": {"x": 1}}) != code_version_of(reader, {}, {"pkg": {"x": 2}})
    computed = {**reader, "raw_code": "select '{{ var(name) }}'"}
    assert code_version_of(computed, {}, {"y": 1}) != code_version_of(computed, {}, {"y": 2}), "any var may be it"
