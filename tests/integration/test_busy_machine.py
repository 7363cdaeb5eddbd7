"""The local stack gives no false failures on a busy machine: a warm environment whose runtime waits
for a CPU before taking an event answers it (the invocation's Timeout runs from when the runtime takes
the event, as on Lambda; the init limit bounds init only).

The stage's throttling is raised here: these GETs measure the environments, not API Gateway's limits
(tests/emulator/test_api_events.py covers those).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from reimagine_emulator import environments
from tests.integration.conftest import Pipeline, PipelineConfig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline_config() -> PipelineConfig:
    return PipelineConfig(parameters={"ThrottlingBurstLimit": "5000", "ThrottlingRateLimit": "10000"})


def test_the_api_answers_300_back_to_back_gets_beside_cpu_burners_without_a_5xx(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a request, and the stack's environments as after an hour of `local up` (past their init limit)
    request_id = pipeline.create("burner@example.com", "image/jpeg")["id"]
    monkeypatch.setattr(environments, "INIT_LIMIT_SECONDS", -3600.0)
    # And a process burning each CPU beside the stack, so runtimes wait for a CPU before taking an event
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in os.sched_getaffinity(0)]
    try:
        # When 300 GETs of its status come one after the other
        statuses = [pipeline.stack.api_invoke("GET", f"/requests/{request_id}").status for _ in range(300)]
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    # Then every one is answered 200: no false timeout, no 5xx
    assert statuses == [200] * 300
