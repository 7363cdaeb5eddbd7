"""Moderation at the three stages of the pipeline, on moto: a blocked upload spends no caption call, a
blocked caption is never stored nor painted, a blocked picture never reaches the results bucket; each
ends FAILED with CONTENT_BLOCKED and its stage, and a moderator outage is retried, never passed."""

from __future__ import annotations

import contextlib
import email
import email.policy

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from reimagine import clients
from reimagine.errors import ContentBlocked
from reimagine.models import ErrorInfo, Status
from reimagine.moderation import ModerationUnavailable
from reimagine.steps.notify import notify_user
from tests.fixtures.moderators import FakeModerator
from tests.fixtures.provider_fakes import FakeCaptioner, FakeGenerator
from tests.fixtures.steps_on_moto import create_request, picture, run_caption, run_generate, upload


def _caption(settings, request_id, captioner, moderator):
    return run_caption(settings, request_id, captioner, moderator=lambda: moderator)


def _generate(settings, request_id, generator, moderator):
    return run_generate(settings, request_id, generator, moderator=lambda: moderator)


def _captioned(settings, moderator: FakeModerator) -> str:
    request_id = create_request(settings)
    upload(settings, request_id, picture())
    assert _caption(settings, request_id, FakeCaptioner(), moderator).outcome == "done"
    return request_id


def _results(settings) -> list:
    return clients.s3().list_objects_v2(Bucket=settings.results_bucket).get("Contents", [])


def test_a_flagged_upload_is_blocked_before_any_caption_call(aws):
    # Given an upload the moderator flags
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    captioner = FakeCaptioner()
    # When the caption step runs
    _caption(aws, request_id, captioner, FakeModerator(flag_images=("image/jpeg",)))
    # Then the request ends blocked at the upload and no caption was asked for
    record = clients.store().get(request_id)
    assert (record.status, record.error, len(captioner.calls)) == (
        Status.FAILED,
        ErrorInfo(
            code="CONTENT_BLOCKED", message=ContentBlocked("upload", by="x").message, details={"stage": "upload"}
        ),
        0,
    )


def test_a_flagged_caption_is_blocked_and_never_stored(aws):
    # Given a clean upload whose caption the moderator flags
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    # When the caption step runs
    _caption(aws, request_id, FakeCaptioner(), FakeModerator(flag_text=True))
    # Then the request ends blocked at the caption, which is not on the record
    record = clients.store().get(request_id)
    assert (record.status, record.error.code, record.error.details, record.caption) == (
        Status.FAILED,
        "CONTENT_BLOCKED",
        {"stage": "caption"},
        None,
    )


def test_a_flagged_picture_is_blocked_and_never_stored(aws):
    # Given a captioned request whose picture the moderator flags
    moderator = FakeModerator(flag_images=("image/png",))
    request_id = _captioned(aws, moderator)
    # When the generate step runs
    _generate(aws, request_id, FakeGenerator(), moderator)
    # Then the request ends blocked at the picture and the results bucket holds nothing
    record = clients.store().get(request_id)
    assert (record.status, record.error.details, record.result_key, _results(aws)) == (
        Status.FAILED,
        {"stage": "picture"},
        None,
        [],
    )


def test_an_unflagged_photo_is_checked_at_each_stage_and_completes(aws):
    # Given a moderator that flags nothing
    moderator = FakeModerator()
    # When the photo goes through both steps
    request_id = _captioned(aws, moderator)
    _generate(aws, request_id, FakeGenerator(), moderator)
    # Then it completes, having been checked as an upload, a caption and a picture
    assert (clients.store().get(request_id).status, moderator.seen) == (
        Status.COMPLETED,
        ["image/jpeg", "text", "image/png"],
    )


def test_a_moderator_outage_gives_the_step_back_for_a_retry(aws):
    # Given a moderator that cannot answer once
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    moderator = FakeModerator(errors=[ModerationUnavailable("HTTP 503")])
    # When the caption step runs
    with pytest.raises(ModerationUnavailable):
        _caption(aws, request_id, FakeCaptioner(), moderator)
    # Then the request waits for the retry, uncaptioned
    assert clients.store().get(request_id).status is Status.PENDING_UPLOAD


def test_a_moderator_outage_on_every_attempt_fails_with_a_clear_code_and_never_passes(aws):
    # Given a moderator that never answers
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    captioner = FakeCaptioner()
    outages = [ModerationUnavailable("HTTP 503") for _ in range(aws.max_attempts)]
    moderator = FakeModerator(errors=outages)
    # When the step is delivered as often as it may be
    for _ in range(aws.max_attempts):
        with contextlib.suppress(ModerationUnavailable):
            _caption(aws, request_id, captioner, moderator)
    # Then the request ends MODERATION_UNAVAILABLE, and no caption was asked for
    record = clients.store().get(request_id)
    assert (record.status, record.error.code, len(captioner.calls)) == (Status.FAILED, "MODERATION_UNAVAILABLE", 0)


def test_a_blocked_request_gets_one_email_with_no_content(aws):
    # Given a request blocked at the picture (its caption had passed)
    moderator = FakeModerator(flag_images=("image/png",))
    request_id = _captioned(aws, moderator)
    _generate(aws, request_id, FakeGenerator(), moderator)
    caption = clients.store().get(request_id).caption
    # When it is notified
    notify_user(request_id, store=clients.store(), s3=clients.s3(), ses=clients.ses(), settings=aws)
    # Then one email says it could not be processed, with neither the caption nor a link to a picture
    (sent,) = ses_backends[DEFAULT_ACCOUNT_ID][boto3.session.Session().region_name].sent_messages
    message = email.message_from_string(sent.raw_data, policy=email.policy.default)  # raw MIME, as sent
    text = "\n".join(part.get_content() for part in message.walk() if part.get_content_maintype() == "text")
    assert (
        "could not be processed" in text,
        caption in text,
        "X-Amz-" in text,  # a presigned download
        f"/requests/{request_id}/result" in text,  # the stable download link
    ) == (True, False, False, False)


def test_the_api_shows_the_stage_that_blocked(aws):
    # Given a request blocked at the upload
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    _caption(aws, request_id, FakeCaptioner(), FakeModerator(flag_images=("image/jpeg",)))
    # When its record is shown as GET /requests/{id} shows it
    from reimagine.steps.api import view_request

    record = clients.store().get(request_id)
    shown = view_request(record, s3=clients.s3(), settings=aws).model_dump(mode="json", by_alias=True)
    # Then the error carries its stage
    assert shown["error"] == {
        "code": "CONTENT_BLOCKED",
        "message": ContentBlocked("upload", by="x").message,
        "details": {"stage": "upload"},
    }
