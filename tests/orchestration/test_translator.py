"""One translator from graph building to every reader: a ``DbtTranslator`` subclass named in headwater.yml gives the
same asset keys to the graph, selection, column lineage, change plans, table diff, docs and the catalog."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from assets import AssetKey, DbtTranslator
from tests.conftest import REPO, base_env, run_cli
from tests.orchestration.test_changes import _compiled

TRANSLATOR = """
from assets import AssetKey, DbtTranslator


class Warehoused(DbtTranslator):
    \"\"\"Models' asset keys under a 'wh' prefix (sources keep theirs: they are the dlt tables' keys).\"\"\"

    def get_asset_key(self, node):
        key = super().get_asset_key(node)
        return AssetKey(("wh", *key.parts)) if node.get("resource_type") == "model" else key
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "hw_keys.py").write_text(TRANSLATOR)
    (tmp_path / "headwater.yml").write_text("dbt_translator: hw_keys:Warehoused\npython_assets: []\n")
    return tmp_path


@pytest.mark.unit
def test_headwater_yml_names_the_translator_and_bad_names_say_where_and_how(project: Path) -> None:
    from orchestration.core.errors import ConfigFileError
    from orchestration.settings import Settings

    translator = Settings.load(project).translator({"retries": 2})
    assert type(translator).__name__ == "Warehoused" and translator.defaults.retries == 2
    (project / "headwater.yml").write_text("dbt_translator: hw_keys:Missing\n")
    with pytest.raises(ConfigFileError, match=r"headwater.yml: dbt_translator 'hw_keys:Missing' cannot be loaded"):
        Settings.load(project).translator()
    (project / "headwater.yml").write_text("dbt_translator: json:JSONDecoder\n")
    with pytest.raises(ConfigFileError, match="is not a subclass of assets.DbtTranslator"):
        Settings.load(project).translator()
    (project / "headwater.yml").write_text("dbt_translator: just_a_module\n")
    with pytest.raises(ConfigFileError, match="must be 'module:Class'"):
        Settings.load(project)


@pytest.mark.unit
def test_every_reader_of_the_manifest_keys_assets_by_the_projects_translator(project: Path, manifest: dict) -> None:
    from orchestration.analysis.changes import build_change_plan
    from orchestration.analysis.lineage import key_map
    from orchestration.analysis.table_diff import model_relation
    from orchestration.engine.plan import asset_graph
    from orchestration.settings import Settings
    from orchestration.web.docs import annotate_manifest

    translator = Settings.load(project).translator()
    graph = asset_graph(manifest, with_ingestion=False, translator=translator)
    orders = AssetKey.parse("wh.marts.orders")
    assert orders in graph and graph.by_unique_id()["model.headwater.orders"] == orders
    keys = key_map(manifest, translator)
    assert {uid: str(k) for uid, k in graph.by_unique_id().items() if uid in keys} == keys

    # table diff finds the model by its key, and still reads the node's own relation
    assert model_relation(manifest, "wh.marts.orders", translator) == ("model.headwater.orders", "marts", "orders")

    # docs put a check result on the node whose key the run log recorded
    from assets.run_log import CheckRecord

    record = CheckRecord("wh.marts.orders", "not_null_orders_id", "run-1", "error", "pass", 0)
    copy = json.loads(json.dumps(manifest))
    linked, _ = annotate_manifest(
        copy, {("wh.marts.orders", "x"): (record, None)}, _no_lineage(), "dev", False, translator
    )
    assert linked == 1 and "not_null_orders_id" in copy["nodes"]["model.headwater.orders"]["description"]

    # change plans key both sides by it
    old, new = _compiled({"m": 'select a from "db"."raw"."t"'}), _compiled({"m": 'select a, b from "db"."raw"."t"'})
    (change,) = build_change_plan(old, new, project, translator).changes
    assert change.key == "wh.main.m", change
    assert "raw_shop.orders" in graph.specs.keys() | {str(k) for k in graph.specs}, "sources keep their keys"


@pytest.mark.slow
def test_the_cli_selects_by_the_translators_keys(project: Path, tmp_path: Path) -> None:
    for part in ("dbt_project", "profiles"):  # the demo's GX suites name the demo's keys: left out
        shutil.copytree(REPO / part, project / part, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    env = base_env(tmp_path / "data", tmp_path / "prefect_home")
    env["HEADWATER_PROJECT_DIR"] = str(project)
    out = run_cli(["assets", "-s", "key:wh.marts.orders", "--output", "json"], env)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    built = [(line["unique_id"], line["resource_type"]) for line in lines if line["resource_type"] != "test"]
    assert built == [("model.headwater.orders", "model")], lines  # with its tests, as `dbt ls -s orders` lists
    table = run_cli(["assets", "-s", "layer:marts"], {**env, "COLUMNS": "200"}).stdout
    assert "wh.marts.orders" in table and " marts.orders " not in table


def _no_lineage():
    from assets.lineage import ColumnLineage

    return ColumnLineage()


@pytest.mark.unit
def test_without_a_setting_the_translator_is_headwaters_own(tmp_path: Path) -> None:
    from orchestration.settings import Settings

    assert type(Settings.load(tmp_path).translator()) is DbtTranslator
