"""The whole pipeline with every function in its own execution environments (awslambdaric processes).

The rest of the integration suite still runs the functions in the test process; this runs the same
graph the way Lambda runs it: each function sees only its own Environment from the template, and its
REPORT lines show environments created once and reused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from reimagine_local.outbox import list_outbox
from reimagine_local.stack import EmbeddedStack
from tests.integration.conftest import ROOT, SAMPLE_PHOTO

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def outbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outbox-environments")


@pytest.fixture(scope="module")
def stack(outbox: Path) -> Iterator[EmbeddedStack]:
    stack = EmbeddedStack(ROOT / "template.yaml", stack_name="reimagine-env", outbox_dir=outbox, environments=True)
    with stack.start():
        yield stack


def test_a_photo_goes_all_the_way_with_each_function_in_its_own_environments(
    stack: EmbeddedStack, outbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the stack running every function in execution environments
    data = SAMPLE_PHOTO.read_bytes()
    with caplog.at_level(logging.INFO, logger="reimagine_local"):
        # When a photo is requested, uploaded and every event delivered
        created = stack.api_invoke(
            "POST", "/requests", {"email": "env@example.com", "content_type": "image/jpeg", "size": len(data)}
        ).json()
        form = created["upload"]
        assert (
            requests.post(form["url"], data=form["fields"], files={"file": ("p", data)}, timeout=30).status_code == 204
        )
        stack.drain(timeout=120)
        record = stack.api_invoke("GET", f"/requests/{created['id']}").json()
    # Then it is COMPLETED, one email went out, and each step ran in a started environment
    assert (record["status"], [m.to for m in list_outbox(outbox)]) == ("COMPLETED", ["env@example.com"])
    reports = {r.name.rsplit(".", 1)[-1] for r in caplog.records if r.getMessage().startswith("REPORT RequestId: ")}
    assert {"ApiFunction", "CaptionFunction", "GenerateFunction", "NotifyFunction"} <= reports
