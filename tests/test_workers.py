"""The suite's own scheduling: under ``--dist loadgroup`` a module's tests run on one worker, so its module fixtures
(a whole materialize, a Prefect server) are built once. pytest 9.2 broke this silently (pytest-xdist#1386): the
suite still passed, every test became its own unit and a module's heavy fixtures could be built on every worker."""

from __future__ import annotations

import os

import pytest


def test_this_module_is_one_scheduling_group(request: pytest.FixtureRequest) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER") or not request.config.getoption("loadgroup", False):
        pytest.skip("not running on pytest-xdist workers with --dist loadgroup")
    assert request.node.nodeid.endswith("@tests.test_workers"), (
        f"pytest-xdist did not tag {request.node.nodeid!r} with its group: --dist loadgroup is not grouping, "
        "check the pytest / pytest-xdist pins in pyproject.toml"
    )
