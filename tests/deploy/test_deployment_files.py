"""The deployment files, checked statically (no Docker engine or cluster here): they parse, and the names
in them (services, env variables, secrets, work pools, deployments) are the ones the code reads."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from orchestration.prefect.deploy import load_deployments
from tests.conftest import REPO

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`

CODE_DIRS = ("assets", "ingestion", "orchestration", "quality")
ENV_NAME = re.compile(r"\bHEADWATER_[A-Z0-9_]+\b")


def read_by_code() -> set[str]:
    """Every HEADWATER_* name the code, the profiles or headwater.yml mentions."""
    names: set[str] = set()
    for folder in CODE_DIRS:
        for path in (REPO / folder).rglob("*.py"):
            names |= set(ENV_NAME.findall(path.read_text()))
    for path in (REPO / "profiles" / "profiles.yml", REPO / "headwater.yml"):
        names |= set(ENV_NAME.findall(path.read_text()))
    return names


def required_by_target(target: str) -> set[str]:
    """The variables a target's profile needs (env_var() without a default)."""
    profile = yaml.safe_load((REPO / "profiles" / "profiles.yml").read_text())["headwater"]["outputs"][target]
    text = yaml.safe_dump(profile)
    return set(re.findall(r"env_var\('([A-Z0-9_]+)'\)", text))


def load_all(path):
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def env_names(env) -> set[str]:
    if isinstance(env, dict):
        return set(env)
    return {item["name"] for item in env}


POOLS = {spec.work_pool for spec in load_deployments(REPO / "prefect.yaml")}


def test_prefect_yaml_declares_hourly_and_nightly() -> None:
    specs = {s.name: s for s in load_deployments(REPO / "prefect.yaml")}
    assert specs["hourly-incremental"].cron == "0 * * * *" and specs["hourly-incremental"].parameters["selection"]
    assert specs["nightly-full"].parameters["full_refresh"] is True
    assert all(s.concurrency_limit == 1 for s in specs.values())


def test_compose_services_and_env_match_the_code() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "prefect-server", "worker", "deploy"} <= set(services)
    server_env = services["prefect-server"]["environment"]
    assert server_env["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/prefect" in server_env["PREFECT_API_DATABASE_CONNECTION_URL"]
    worker = services["worker"]
    names = env_names(worker["environment"])
    assert required_by_target("postgres") <= names, "the worker lacks a variable the postgres target needs"
    assert {n for n in names if n.startswith("HEADWATER_")} <= read_by_code()
    assert worker["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert worker["command"][worker["command"].index("--pool") + 1] in POOLS
    assert services["deploy"]["command"] == ["headwater", "deploy"]
    init = (REPO / "deploy" / "postgres" / "init.sql").read_text()
    assert "CREATE DATABASE prefect" in init and "CREATE DATABASE warehouse" in init
    assert worker["environment"]["HEADWATER_PG_DATABASE"] == "warehouse"


def test_dockerfile_installs_the_locked_project_and_runs_a_worker() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11" in text
    assert "uv sync --locked --no-dev" in text
    cmd = re.search(r"CMD \[(.*)\]", text).group(1)
    assert '"--pool", "headwater-process"' in cmd and "headwater-process" in POOLS


def test_kubernetes_manifests_reference_only_declared_secrets() -> None:
    folder = REPO / "deploy" / "kubernetes"
    secrets = {d["metadata"]["name"]: set(d["stringData"]) for d in load_all(folder / "secrets.example.yaml")}
    docs = load_all(folder / "prefect-server.yaml") + load_all(folder / "worker.yaml")
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {
        ("Deployment", "prefect-server"),
        ("Service", "prefect-server"),
        ("Deployment", "headwater-worker"),
    } <= kinds
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for item in container.get("env", []):
                ref = (item.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]], (ref, item["name"])
    worker = next(d for d in docs if d["metadata"]["name"] == "headwater-worker")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    names = env_names(container["env"])
    assert required_by_target("postgres") <= names
    assert {n for n in names if n.startswith("HEADWATER_")} <= read_by_code()
    assert container["command"][container["command"].index("--pool") + 1] in POOLS
    service = next(d for d in docs if d["kind"] == "Service")
    server = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "prefect-server")
    assert service["spec"]["selector"].items() <= server["spec"]["template"]["metadata"]["labels"].items()


def test_terraform_declares_what_prefect_yaml_declares() -> None:
    text = (REPO / "deploy" / "terraform" / "main.tf").read_text()
    for spec in load_deployments(REPO / "prefect.yaml"):
        assert f'name           = "{spec.name}"' in text, spec.name
        assert f'cron          = "{spec.cron}"' in text, spec.cron
    assert 'name = "headwater-process"' in text and '"headwater-target-${var.target}"' in text


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed here")
def test_terraform_is_formatted() -> None:
    proc = subprocess.run(
        ["terraform", "fmt", "-check", "-diff", str(REPO / "deploy" / "terraform")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_github_workflows_run_ci_and_deploy() -> None:
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    steps = " ".join(str(s.get("run", "")) for s in ci["jobs"]["test"]["steps"])
    for command in ("ruff check", "ruff format --check", "uv run pytest", "dbt build", "uv sync --locked"):
        assert command in steps, command
    assert ci["jobs"]["test"]["env"]["HEADWATER_REQUIRE_SERVICES"] == "1"
    assert "postgres" in ci["jobs"]["test"]["services"]
    cd = yaml.safe_load((REPO / ".github" / "workflows" / "cd.yml").read_text())
    assert "docker/build-push-action" in str(cd["jobs"]["image"]["steps"])
    assert "headwater deploy" in str(cd["jobs"]["deploy"]["steps"])
    assert "secrets.PREFECT_API_URL" in str(cd["jobs"]["deploy"]["env"])
