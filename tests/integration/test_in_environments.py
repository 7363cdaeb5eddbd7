"""The pipeline's functions run the way Lambda runs them: each in its own execution environments
(awslambdaric processes), with only its own Environment from the template.

The whole integration suite runs this way (the `pipeline` fixture); these tests check what only
environments can show: REPORT lines of environments created once and reused, and a function whose
template section lacks a variable its code requires failing its init as it would on AWS.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from reimagine_emulator.environments import FunctionError, ProcessInvoker
from reimagine_tools.template import read_application
from tests.fixtures.events import load_event
from tests.integration.conftest import ROOT, SAMPLE_PHOTO, Pipeline

pytestmark = pytest.mark.integration


def test_a_photo_goes_all_the_way_with_each_function_in_its_own_environments(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the stack running every function in execution environments
    with caplog.at_level(logging.INFO, logger="reimagine_emulator"):
        # When two photos are requested, uploaded and every event delivered, one after the other
        first = pipeline.submit(SAMPLE_PHOTO.read_bytes(), "image/jpeg", email="env@example.com")
        second = pipeline.submit(SAMPLE_PHOTO.read_bytes(), "image/jpeg", email="env-again@example.com")
        pipeline.stack.drain()  # the email goes out after COMPLETED
    # Then both are COMPLETED with one email each
    assert [pipeline.status(i)["status"] for i in (first, second)] == ["COMPLETED", "COMPLETED"]
    assert [len(pipeline.mail_to(a)) for a in ("env@example.com", "env-again@example.com")] == [1, 1]
    # And every step reported as Lambda does, from an environment that was already there the second time
    reports = [r for r in caplog.records if r.getMessage().startswith("REPORT RequestId: ")]
    steps = ("ApiFunction", "CaptionFunction", "GenerateFunction", "NotifyFunction")
    assert set(steps) <= {r.name.rsplit(".", 1)[-1] for r in reports}
    caption_reports = [r.getMessage() for r in reports if r.name.endswith(".CaptionFunction")]
    assert "Init Duration: " not in caption_reports[-1]


@pytest.fixture(scope="module")
def template_without_captions_bucket(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """template.yaml with UPLOADS_BUCKET taken out of CaptionFunction's own section only (ApiFunction
    still declares it, so one process holding every function's variables would still have it)."""
    text = (ROOT / "template.yaml").read_text()
    section = text.index("\n  CaptionFunction:\n")
    line = re.compile(r"\n +UPLOADS_BUCKET: [^\n]*").search(text, section)
    assert line is not None
    text = text[: line.start()] + text[line.end() :]
    text = text.replace("    CodeUri: functions/\n", f"    CodeUri: {ROOT / 'functions'}/\n", 1)
    path = tmp_path_factory.mktemp("lacking") / "template.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def invoker(template_without_captions_bucket: Path) -> Iterator[ProcessInvoker]:
    # No AWS endpoint is needed: the function fails before its first call.
    invoker = ProcessInvoker(
        template_without_captions_bucket.parent,
        region="us-east-1",
        extra_env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
    )
    yield invoker
    invoker.stop()


def test_a_function_lacking_a_required_variable_in_its_section_fails_at_init_as_on_aws(
    template_without_captions_bucket: Path, invoker: ProcessInvoker
) -> None:
    # Given CaptionFunction's section lacks UPLOADS_BUCKET, which another function declares
    app = read_application(template_without_captions_bucket)
    caption = app.functions["CaptionFunction"]
    assert "UPLOADS_BUCKET" not in caption.environment
    assert "UPLOADS_BUCKET" in app.functions["ApiFunction"].environment
    # When an upload's event reaches it
    event = load_event("s3_object_created.json")
    with pytest.raises(FunctionError) as failed:
        invoker.invoke(caption, event)
    # Then its init fails with the error its require_settings raises on AWS
    assert (failed.value.payload["errorType"], failed.value.payload["errorMessage"]) == (
        "MissingSettings",
        "UPLOADS_BUCKET not set: this function needs them (template.yaml sets them)",
    )
