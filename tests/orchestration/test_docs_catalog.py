"""dbt docs with check results and column lineage, and the asset catalog page driven in headless Chromium.

Both run over the materialized demo scenario (tests/orchestration/conftest.py). The browser is Debian's
``chromium`` package driven by Playwright's Python package (no browser download); without it the browser
test skips, and in CI (HEADWATER_REQUIRE_SERVICES=1) that skip is a failure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import REPO, free_port, run_cli, stop_process_group
from tests.orchestration.conftest import Scenario

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def docs(scenario: Scenario) -> dict:
    proc = run_cli(["docs"], scenario.env)
    folder = scenario.data / "docs"
    return {"proc": proc, "folder": folder, "manifest": json.loads((folder / "manifest.json").read_text())}


def test_docs_start_at_the_dlt_tables_with_types_and_descriptions(docs: dict) -> None:
    assert (docs["folder"] / "index.html").exists() and (docs["folder"] / "catalog.json").exists()
    source = docs["manifest"]["sources"]["source.headwater.raw_shop.orders"]
    assert source["loader"] == "dlt"
    assert source["columns"]["id"]["data_type"] == "bigint" and source["columns"]["id"]["description"]
    assert docs["manifest"]["exposures"], "the exposures must be in the docs"
    child_map = docs["manifest"]["child_map"]
    assert "model.headwater.stg_shop__orders" in child_map["source.headwater.raw_shop.orders"]


def _cells(html: str) -> str:
    """An HTML table's cells as ``| a | b |`` rows (descriptions are written as allow-listed HTML)."""
    import re

    text = re.sub(r"</t[dh]>\s*<t[dh][^>]*>", " | ", html)
    text = re.sub(r"<tr>\s*<t[dh][^>]*>", "| ", text)
    return re.sub(r"</t[dh]>\s*</tr>", " |", text)


def test_docs_link_each_assets_check_results(docs: dict) -> None:
    orders = _cells(docs["manifest"]["nodes"]["model.headwater.orders"]["description"])
    assert "<h4>Checks (Headwater run log on dev)</h4>" in orders
    assert "| unique_orders_order_id | error | ✓ pass | 0 |" in orders
    assert "| expect_column_values_to_be_unique__order_id | error |" in orders  # a GX expectation
    assert '<a href="gx_data_docs/index.html" rel="noopener noreferrer">GX Data Docs</a>' in orders
    assert (docs["folder"] / "gx_data_docs" / "index.html").exists()
    raw = _cells(docs["manifest"]["sources"]["source.headwater.raw_shop.payments"]["description"])
    assert "| quarantine | warn |" in raw and "| freshness |" in raw
    assert "check results linked on" in docs["proc"].stdout


def test_docs_show_column_lineage(docs: dict) -> None:
    column = docs["manifest"]["nodes"]["model.headwater.orders"]["columns"]["is_paid"]["description"]
    assert "Computed from <code>intermediate.int_orders__items_summed.order_amount</code>" in column
    assert "raw: <code>raw_shop.order_items.quantity</code>" in column


@pytest.fixture(scope="module")
def catalog_url(scenario: Scenario, docs: dict):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", "catalog", "--port", str(port)],
        cwd=REPO,
        env=scenario.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/graph", timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process_group(proc)
            pytest.fail(f"headwater catalog did not start:\n{proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.5)
    yield url
    stop_process_group(proc)


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_catalog_api_describes_every_asset(scenario: Scenario, catalog_url: str) -> None:
    status, graph = _get(f"{catalog_url}/api/graph")
    assert status == 200 and graph["target"] == "dev" and graph["docs"] is True
    keys = {n["key"] for n in graph["nodes"]}
    assert {"raw_shop.orders", "staging.stg_shop__orders", "marts.orders", "exposures.revenue_dashboard"} <= keys
    assert {"from": "raw_shop.orders", "to": "staging.stg_shop__orders"} in graph["edges"]
    status, orders = _get(f"{catalog_url}/api/assets/marts.orders")
    assert status == 200
    assert orders["materialization"]["status"] == "success"
    assert orders["warehouse_rows"] == scenario.query("select count(*) from marts.orders")[0][0]
    assert any(c["name"] == "unique_orders_order_id" and c["status"] == "pass" for c in orders["checks"])
    assert orders["docs_url"] == "/docs/#!/model/model.headwater.orders"
    assert orders["stale"] is None and orders["freshness"]["status"]
    _, raw = _get(f"{catalog_url}/api/assets/raw_shop.orders")
    assert raw["freshness"]["status"] == "pass" and raw["docs"] == "#!/source/source.headwater.raw_shop.orders"
    status, missing = _get(f"{catalog_url}/api/assets/marts.nothing")
    assert status == 404 and "no asset 'marts.nothing'" in missing["detail"]


def test_catalog_page_in_headless_chromium(catalog_url: str, tmp_path) -> None:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    _, graph = _get(f"{catalog_url}/api/graph")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(catalog_url)
            page.wait_for_selector(f'svg#graph[data-rendered="{len(graph["nodes"])}"]', timeout=30_000)
            assert page.locator("g.node").count() == len(graph["nodes"])
            assert page.locator("path.edge").count() == len(graph["edges"])
            assert "assets" in page.locator("#summary").inner_text()

            page.locator('g.node[data-key="marts.orders"]').click()
            page.wait_for_selector('#details[data-key="marts.orders"]', timeout=10_000)
            assert page.locator("#detail-key").inner_text() == "marts.orders"
            assert "success" in page.locator("#detail-materialization").inner_text()
            assert page.locator("#detail-checks tr").count() > 5
            rows = page.locator("#detail-rows").inner_text()
            assert rows.split()[0].replace(",", "").isdigit() and "at the end of run" in rows, rows
            assert page.locator("#docs-link").get_attribute("href") == "/docs/#!/model/model.headwater.orders"
            assert page.locator("path.edge.hot").count() >= 4  # its edges are highlighted

            page.locator('#details a[data-goto="marts.daily_revenue"]').click()  # follow lineage in the panel
            page.wait_for_selector('#details[data-key="marts.daily_revenue"]', timeout=10_000)

            page.fill("#filter", "raw_shop")
            assert page.locator("g.node.dim").count() == len(graph["nodes"]) - sum(
                1 for n in graph["nodes"] if "raw_shop" in n["key"]
            )
            page.screenshot(path=str(tmp_path / "catalog.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()
