"""Suite files: the shipped suites load against the demo graph; bad files get errors naming file and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from assets import AssetKey, Severity
from quality.suites import SuiteError, load_suites
from tests.conftest import REPO

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`

KNOWN = [AssetKey.parse(k) for k in ("raw_shop.payments", "raw_shop.orders", "marts.orders")]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_shipped_suites_cover_raw_payments_orders_and_two_marts(manifest) -> None:
    from orchestration.engine.plan import asset_graph

    graph = asset_graph(manifest, suites_dir=REPO / "quality" / "suites")
    suites = {str(c.asset_key) for c in graph.checks if c.kind == "gx"}
    assert {"raw_shop.payments", "raw_shop.orders"} <= suites
    assert len({s for s in suites if s.startswith("marts.")}) >= 2


def test_expectations_become_checks_with_names_and_severities(tmp_path: Path) -> None:
    write(
        tmp_path,
        "raw_shop.payments.yml",
        "severity: warn\nexpectations:\n"
        "  - expect_column_values_to_not_be_null: {column: id}\n"
        "    severity: error\n"
        "  - expect_column_values_to_be_between: {column: amount, min_value: 0}\n"
        "    name: amount_ok\n",
    )
    (suite,) = load_suites(tmp_path, KNOWN)
    assert [(c.name, c.severity, c.kind) for c in suite.checks] == [
        ("expect_column_values_to_not_be_null__id", Severity.ERROR, "gx"),
        ("amount_ok", Severity.WARN, "gx"),
    ]
    assert suite.checks[1].unique_id == "gx.raw_shop.payments.amount_ok"
    assert suite.columns == ("amount", "id")


def test_a_suite_named_after_no_asset_is_refused_with_the_fix(tmp_path: Path) -> None:
    write(tmp_path, "raw_shop.paymnets.yml", "expectations: []\n")
    with pytest.raises(SuiteError) as caught:
        load_suites(tmp_path, KNOWN)
    assert "raw_shop.paymnets.yml: no asset 'raw_shop.paymnets' in the graph; did you mean raw_shop.payments" in str(
        caught.value
    )


def test_what_is_wrong_inside_a_suite_is_one_error_check_each_with_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "raw_shop.orders.yml",
        "severity: fatal\nexpectations:\n"
        "  - expect_column_values_to_not_be_null: {column: id}\n"
        "  - expect_column_values_to_not_be_null: {column: id}\n"
        "  - {column: id}\n"
        "  - expect_x: {column: id}\n    colour: red\n"
        "  - expect_column_values_to_be_unique: {colum: id}\n",
    )
    write(tmp_path, "marts.orders.yml", "expectations: [\n")
    suites = {str(s.asset_key): s for s in load_suites(tmp_path, KNOWN)}
    orders = suites["raw_shop.orders"].checks
    names = [c.name for c in orders]
    assert len(names) == len(set(names)) == 6, "check names are unique by construction"
    assert names[:3] == [
        "gx_suite",
        "expect_column_values_to_not_be_null__id",
        "expect_column_values_to_not_be_null__id__2",
    ]
    invalid = {c.name: c.config["invalid"] for c in orders if "invalid" in c.config}
    assert invalid["gx_suite"] == f"{path}:1: severity 'fatal' must be `error` or `warn`"
    assert invalid["expectation"] == f"{path}:5: needs exactly one `expect_...` key, found 0"
    assert f"{path}:6:" in invalid["expect_x__id"] and "unknown option(s) colour" in invalid["expect_x__id"]
    # the misspelled argument passes here; GX refuses it when the suite runs (one error, named once)
    assert orders[-1].name == "expect_column_values_to_be_unique" and "invalid" not in orders[-1].config
    (broken,) = suites["marts.orders"].checks
    assert broken.name == "gx_suite" and broken.config["invalid"].startswith(f"{tmp_path / 'marts.orders.yml'}:")
    assert "not valid YAML" in broken.config["invalid"]


def test_no_suites_folder_means_no_suites(tmp_path: Path) -> None:
    assert load_suites(tmp_path / "absent") == []
