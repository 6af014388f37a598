"""The typed request the CLI builds once for a run, and the primitive parameters it hands the flow."""

from __future__ import annotations

import inspect
import json

import pytest

from orchestration.engine.request import RunRequest

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`


def test_the_flow_parameters_are_plain_json_and_each_names_a_parameter_of_the_flow() -> None:
    from orchestration.prefect.flow import materialize_flow

    request = RunRequest.of(["marts.orders+"], ["tag:slow"], vars={"day": 3}, threads=2, rebuild=("marts.orders",))
    parameters = request.flow_parameters()
    accepted = set(inspect.signature(materialize_flow.fn).parameters)
    assert set(parameters) <= accepted, set(parameters) - accepted
    assert json.loads(json.dumps(parameters)) == parameters, "a deployment stores them as JSON"
    assert parameters["selection"] == ["marts.orders+"] and parameters["exclude"] == ["tag:slow"]
    assert parameters["rebuild"] == ["marts.orders"] and parameters["vars"] == {"day": 3}


def test_an_empty_selection_is_no_selection() -> None:
    parameters = RunRequest.of([], []).flow_parameters()
    assert parameters["selection"] is None and parameters["exclude"] is None and parameters["rebuild"] == []
