"""The whole pipeline with Moderation=openai and Provider=openai against a stand-in OpenAI-compatible
server (tests/fixtures/moderation_standin.py): its /v1/moderations flags the kind of input a test
names, so each stage is blocked in turn. A blocked request spends no provider call after the stage
that blocked it, stores no result, and gets one email with no content; an unflagged photo completes.
"""

from __future__ import annotations

import email
from collections.abc import Iterator
from email import policy

import pytest

from tests.fixtures.moderation_standin import ModerationStandin
from tests.integration.conftest import SAMPLE_PHOTO, Pipeline, PipelineConfig

pytestmark = pytest.mark.integration

CHAT, IMAGES, MODERATIONS = "/v1/chat/completions", "/v1/images/generations", "/v1/moderations"


@pytest.fixture(scope="module")
def standin() -> Iterator[ModerationStandin]:
    with ModerationStandin() as server:
        yield server


@pytest.fixture(scope="module")
def pipeline_config(standin: ModerationStandin) -> PipelineConfig:
    return PipelineConfig(
        parameters={
            "Provider": "openai",
            "Moderation": "openai",
            "OpenAiBaseUrl": standin.url,
            "OpenAiCaptionModels": "standin-vision",
            "OpenAiImageModels": "standin-painter",
        }
    )


def _run(pipeline: Pipeline, standin: ModerationStandin, flag: set[str], address: str) -> tuple[dict, list[str]]:
    """Submit the sample photo with the stand-in flagging `flag`; the record, and the calls it made."""
    standin.flag = frozenset(flag)
    before = len(standin.calls)
    request_id = pipeline.submit(SAMPLE_PHOTO.read_bytes(), "image/jpeg", email=address)
    pipeline.stack.drain()  # the email goes out after the request ends
    return pipeline.status(request_id), [f"{c.path} {c.kind}" for c in standin.calls[before:]]


def _one_email_text(pipeline: Pipeline, address: str) -> str:
    (mail,) = pipeline.mail_to(address)
    message = email.message_from_bytes(mail.file.read_bytes(), policy=policy.default)
    return message.get_body(preferencelist=("plain",)).get_content()


def _assert_blocked_quietly(pipeline: Pipeline, record: dict, address: str) -> None:
    """No result stored; one email, saying it could not be processed, with no caption and no link to
    a picture (neither a presigned download nor the stable download link)."""
    text = _one_email_text(pipeline, address)
    assert (
        f"results/{record['id']}.png" in pipeline.result_keys(),
        "could not be processed" in text,
        "Stand-in caption" in text,
        "X-Amz-" in text,
        f"/requests/{record['id']}/result" in text,
    ) == (False, True, False, False, False)


def test_a_flagged_upload_is_blocked_before_any_caption_call(pipeline: Pipeline, standin: ModerationStandin):
    record, calls = _run(pipeline, standin, {"image/jpeg"}, "flagged-upload@example.com")
    assert (record["status"], record["error"]["code"], record["error"]["details"], calls) == (
        "FAILED",
        "CONTENT_BLOCKED",
        {"stage": "upload"},
        [f"{MODERATIONS} image/jpeg"],
    )
    _assert_blocked_quietly(pipeline, record, "flagged-upload@example.com")


def test_a_flagged_caption_is_blocked_before_any_picture_call(pipeline: Pipeline, standin: ModerationStandin):
    record, calls = _run(pipeline, standin, {"text"}, "flagged-caption@example.com")
    assert (record["status"], record["error"]["details"], "caption" in record, calls) == (
        "FAILED",
        {"stage": "caption"},
        False,
        [f"{MODERATIONS} image/jpeg", f"{CHAT} caption", f"{MODERATIONS} text"],
    )
    _assert_blocked_quietly(pipeline, record, "flagged-caption@example.com")


def test_a_flagged_picture_is_blocked_and_not_stored(pipeline: Pipeline, standin: ModerationStandin):
    record, calls = _run(pipeline, standin, {"image/png"}, "flagged-picture@example.com")
    assert (record["status"], record["error"]["details"], calls[-2:]) == (
        "FAILED",
        {"stage": "picture"},
        [f"{IMAGES} picture", f"{MODERATIONS} image/png"],
    )
    _assert_blocked_quietly(pipeline, record, "flagged-picture@example.com")


def test_an_unflagged_photo_completes_checked_at_each_stage(pipeline: Pipeline, standin: ModerationStandin):
    record, calls = _run(pipeline, standin, set(), "unflagged@example.com")
    assert (record["status"], [c for c in calls if c.startswith(MODERATIONS)]) == (
        "COMPLETED",
        [f"{MODERATIONS} image/jpeg", f"{MODERATIONS} text", f"{MODERATIONS} image/png"],
    )
