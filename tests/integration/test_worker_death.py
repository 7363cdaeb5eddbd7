"""A caption worker killed mid-step (kill -9 of its execution environment, as an out-of-memory kill or
Lambda's timeout ends it) is not a lost request: Lambda retries the upload event, and the retry takes
the dead worker's claim over instead of finding it held and reporting success."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.stalling_provider import StallingProvider
from tests.integration.conftest import Pipeline, PipelineConfig, image_bytes

pytestmark = pytest.mark.integration

ADDRESS = "killed-worker@example.com"


@pytest.fixture(scope="module")
def provider() -> Iterator[StallingProvider]:
    with StallingProvider(stalled_chats=1) as server:
        yield server


@pytest.fixture(scope="module")
def pipeline_config(provider: StallingProvider) -> PipelineConfig:
    return PipelineConfig(parameters={"Provider": "openai", "OpenAiBaseUrl": provider.url})


def _environments_of(function_name: str) -> list[int]:
    """The processes of this test's execution environments of one function (its children, by the
    AWS_LAMBDA_FUNCTION_NAME Lambda sets): other runs on the machine may use the same names."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
        if parent == str(os.getpid()) and f"AWS_LAMBDA_FUNCTION_NAME={function_name}".encode() in environ:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the environment's process in /proc")
def test_a_caption_worker_killed_mid_call_is_retried_to_one_email(pipeline: Pipeline, provider: StallingProvider):
    # Given an uploaded photo whose caption worker is inside its provider call (the provider holds the
    # next chat call, whichever backend's run came before)
    provider.rearm()
    data = image_bytes("PNG")
    created = pipeline.create(ADDRESS, "image/png", len(data))
    assert pipeline.upload(created, data).status_code == 204
    delivering = threading.Thread(target=pipeline.stack.drain, kwargs={"timeout": 240}, daemon=True)
    delivering.start()
    assert provider.held.wait(120), "the caption call never reached the provider"
    # When its execution environment is killed (kill -9)
    (worker,) = _environments_of(pipeline.app.functions["CaptionFunction"].name)
    os.kill(worker, signal.SIGKILL)
    delivering.join(240)
    pipeline.stack.drain()
    # Then Lambda's retry of the event captions the photo, and it goes all the way with one email
    assert (pipeline.status(created["id"])["status"], len(pipeline.mail_to(ADDRESS))) == ("COMPLETED", 1)
