from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.project import Project
from orchestration.warehouse.targets import MissingCredentialError, UnknownTargetError, resolve_target
from tests.conftest import REPO

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    for name in ("HEADWATER_TARGET", "HEADWATER_DUCKDB_PATH", "HEADWATER_PG_HOST", "HEADWATER_PG_USER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HEADWATER_DATA_DIR", str(tmp_path))
    return Project.discover(REPO)


def test_dev_is_the_default_and_lives_in_the_data_folder(project: Project) -> None:
    target = resolve_target(project)
    assert (target.name, target.type) == ("dev", "duckdb")
    assert target.config["path"] == str(project.data_dir / "headwater.duckdb")
    assert target.env["HEADWATER_DUCKDB_PATH"] == target.config["path"]


def test_env_picks_the_target(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_TARGET", "postgres")
    for name, value in {
        "HEADWATER_PG_HOST": "127.0.0.1",
        "HEADWATER_PG_USER": "postgres",
        "HEADWATER_PG_PASSWORD": "x",
        "HEADWATER_PG_DATABASE": "test",
    }.items():
        monkeypatch.setenv(name, value)
    target = resolve_target(project)
    assert target.name == "postgres" and target.config["host"] == "127.0.0.1"
    assert "postgres" in type(target.dlt_destination()).__name__.lower()


def test_missing_variables_are_all_named(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADWATER_PG_PASSWORD", raising=False)
    monkeypatch.delenv("HEADWATER_PG_DATABASE", raising=False)
    with pytest.raises(MissingCredentialError) as info:
        resolve_target(project, "postgres")
    message = str(info.value)
    for name in ("HEADWATER_PG_HOST", "HEADWATER_PG_USER", "HEADWATER_PG_PASSWORD", "HEADWATER_PG_DATABASE"):
        assert name in message
    assert "profiles.yml" in message and "environment" in message


def test_unknown_target_lists_the_known_ones(project: Project) -> None:
    with pytest.raises(UnknownTargetError, match="dev, postgres, snowflake"):
        resolve_target(project, "prod")
