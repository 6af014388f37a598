"""The docs folder `headwater docs` writes is safe wherever it is served (issue 29 finding 11): a description with an
``<img onerror>``, a ``<meta http-equiv=refresh>`` and a ``javascript:`` link, in a foreign dbt project, served by a
plain static server (no Content-Security-Policy, as an S3 bucket or ``dbt docs serve``), opened in headless Chromium:
no script runs, the page does not navigate away, and the description's formatting is still shown."""

from __future__ import annotations

import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.orchestration.test_docs_catalog import CHROMIUM
from tests.orchestration.test_state_foreign import FILES, foreign_project

HOSTILE = {
    **FILES,
    "models/docs.yml": """
        version: 2
        models:
          - name: region_names
            description: >
              **Regions** in upper case. <img src="x" onerror="alert('img')">
              <meta http-equiv="refresh" content="0;url=about:blank#left">
              [a trap](javascript:alert('link')) <script>alert('script')</script>
            columns:
              - name: name
                description: '{{ doc("hostile_column") }}'
    """,
    "models/docs.md": """
        {% docs hostile_column %}
        The name, <svg onload="alert('svg')"></svg> upper-cased.
        {% enddocs %}
    """,
}


def test_a_hostile_description_runs_nothing_on_a_plain_static_server(tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    project = foreign_project(tmp_path, api_url="http://127.0.0.1:9/api", files=HOSTILE)  # docs need no Prefect
    proc = run_cli(["docs", *project["args"]], project["env"])
    folder = tmp_path / "data" / "docs"
    written = (folder / "manifest.json").read_text()
    for gone in ("onerror", "http-equiv", "javascript:", "<script", "onload"):
        assert gone not in written, (gone, proc.stdout[-2000:])
    node = json.loads(written)["nodes"]["model.foreign.region_names"]
    assert "<strong>Regions</strong>" in node["description"]

    # a static server with no security headers at all, in this process: it answers once it is constructed
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html#!/model/model.foreign.region_names"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page()
                dialogs: list[str] = []
                page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
                page.goto(url)
                # the description rendered, and the docs block of its column
                page.wait_for_selector("strong:has-text('Regions')", state="attached", timeout=60_000)
                page.get_by_text("upper-cased").first.wait_for(state="attached", timeout=30_000)
                assert dialogs == []
                assert page.locator("img[onerror], svg[onload], meta[http-equiv]").count() == 0
                assert page.url == url, "the page navigated away"
            finally:
                browser.close()
    finally:
        server.shutdown()
