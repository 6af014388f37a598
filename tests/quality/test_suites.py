"""Suite files: the shipped suites load against the demo graph; bad files get errors naming file and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from assets import AssetKey, Severity
from quality.suites import SuiteError, load_suites
from tests.conftest import REPO

KNOWN = [AssetKey.parse(k) for k in ("raw_shop.payments", "raw_shop.orders", "marts.orders")]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_shipped_suites_cover_raw_payments_orders_and_two_marts(manifest) -> None:
    from orchestration.plan import asset_graph

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


def test_every_problem_is_listed_with_its_file(tmp_path: Path) -> None:
    write(tmp_path, "raw_shop.paymnets.yml", "expectations: []\n")
    write(
        tmp_path,
        "raw_shop.orders.yml",
        "severity: fatal\nexpectations:\n"
        "  - expect_column_values_to_not_be_null: {column: id}\n"
        "  - expect_column_values_to_not_be_null: {column: id}\n"
        "  - {column: id}\n"
        "  - expect_x: {column: id}\n    colour: red\n",
    )
    write(tmp_path, "marts.orders.yml", "expectations: [\n")
    with pytest.raises(SuiteError) as caught:
        load_suites(tmp_path, KNOWN)
    text = str(caught.value)
    assert "raw_shop.paymnets.yml: no asset 'raw_shop.paymnets' in the graph; did you mean raw_shop.payments" in text
    assert "severity 'fatal' must be `error` or `warn`" in text
    assert "used twice in this file; give one a `name:`" in text
    assert "expectation 3: needs exactly one `expect_...` key" in text
    assert "unknown option(s) colour" in text
    assert "marts.orders.yml: not valid YAML" in text


def test_no_suites_folder_means_no_suites(tmp_path: Path) -> None:
    assert load_suites(tmp_path / "absent") == []
