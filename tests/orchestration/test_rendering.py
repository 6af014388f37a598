"""dbt vars as dbt renders them (issue 29 finding 1), and seeds dbt checksums by path hashed by content (finding 9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assets.code_versions import Unrendered
from orchestration.dbt.large_seeds import hash_large_seeds
from orchestration.dbt.rendering import render_vars
from orchestration.warehouse.targets import Target

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`

TARGET = Target("dev", "duckdb", {"path": "/tmp/w.duckdb", "schema": "main", "password": "never"})


def test_a_var_is_rendered_with_the_environment_dbt_renders_with_and_plain_values_stay() -> None:
    values = {
        "x": "{{ env_var('X', 'p1') }}",
        "n": 3,
        "both": "{{ var('x') }}-{{ target.name }}",
        "pkg": {"since": "{{ env_var('SINCE') }}"},
        "text": "no jinja",
    }
    rendered = render_vars(values, TARGET, {"SINCE": "2026-01-01"})
    assert rendered == {"x": "p1", "n": 3, "both": "p1-dev", "pkg": {"since": "2026-01-01"}, "text": "no jinja"}
    assert render_vars(values, TARGET, {"X": "p2", "SINCE": "d"})["x"] == "p2"
    assert render_vars({"a": 1, "b": "plain"}, TARGET, {}) == {"a": 1, "b": "plain"}


def test_a_var_dbt_cannot_render_outside_a_model_is_unrendered_with_why() -> None:
    rendered = render_vars({"m": "{{ my_macro() }}", "unset": "{{ env_var('NOPE_NOT_SET') }}"}, TARGET, {})
    assert isinstance(rendered["m"], Unrendered) and rendered["m"].text == "{{ my_macro() }}"
    assert isinstance(rendered["unset"], Unrendered) and "NOPE_NOT_SET" in rendered["unset"].why
    assert "never" not in str(render_vars({"t": "{{ target }}"}, TARGET, {})), "no secret reaches a version"


def test_a_seed_dbt_checksums_by_path_gets_the_sha256_of_its_content(tmp_path: Path) -> None:
    seed = tmp_path / "seeds" / "big.csv"
    seed.parent.mkdir()
    seed.write_text("id\n" + "\n".join(str(i) for i in range(10)))
    node = {
        "resource_type": "seed",
        "root_path": str(tmp_path),
        "original_file_path": "seeds/big.csv",
        "checksum": {"name": "path", "checksum": "seeds/big.csv"},
    }
    gone = {**node, "original_file_path": "seeds/gone.csv", "checksum": {"name": "path", "checksum": "x"}}
    manifest = hash_large_seeds({"nodes": {"seed.p.big": dict(node), "seed.p.gone": gone}})
    first = manifest["nodes"]["seed.p.big"]["checksum"]
    assert first["name"] == "sha256" and len(first["checksum"]) == 64
    assert manifest["nodes"]["seed.p.gone"]["checksum"]["name"] == "path", "unreadable: stays unknown"
    seed.write_text("id\n1\n")
    again = hash_large_seeds({"nodes": {"seed.p.big": dict(node)}})["nodes"]["seed.p.big"]["checksum"]
    assert again["checksum"] != first["checksum"], "a change of its rows changes its code version"
