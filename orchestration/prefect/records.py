"""Reading Headwater's records back from the Prefect server."""

from __future__ import annotations

import time
from uuid import UUID


def wait_for_task_runs(flow_run_id: str | None, expected: int, timeout: float = 60.0) -> int:
    """Poll the server until it holds ``expected`` task runs for the flow run (or ``timeout`` passes).

    Returns the count it saw last.
    """
    if not flow_run_id or expected <= 0:
        return expected
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flt = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
    deadline = time.monotonic() + timeout
    count = 0
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            response = client.request("POST", "/task_runs/count", json={"flow_runs": flt.model_dump(mode="json")})
            count = int(response.json())
            if count >= expected:
                break
            time.sleep(0.25)
    return count
