"""The three event-driven steps, on moto: each happens once, failures end visibly or are retried, bounded."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from reimagine import clients
from reimagine.errors import ModelUnavailable, ProviderError
from reimagine.handlers import caption as caption_handler
from reimagine.handlers import generate as generate_handler
from reimagine.model_call import Deadline
from reimagine.models import Status, utcnow
from reimagine.providers.chain import CaptionChain
from reimagine.records import RequestStore
from reimagine.steps.caption import CAPTION, caption_upload
from reimagine.steps.claims import LeaseHeld, run_step
from reimagine.steps.notify import notify_user
from tests.fixtures.events import load_event
from tests.fixtures.lambda_context import lambda_context
from tests.fixtures.provider_fakes import FakeCaptioner, FakeGenerator
from tests.fixtures.queue_events import queue_event
from tests.fixtures.steps_on_moto import create_request, picture, run_caption, run_generate, upload


def _notify(settings, request_id):
    return notify_user(request_id, store=clients.store(), s3=clients.s3(), ses=clients.ses(), settings=settings)


def _sent(settings) -> int:
    return boto3.client("ses").get_send_quota()["SentLast24Hours"]


def test_happy_path_runs_each_step_once_even_when_delivered_twice(aws):
    # Given an uploaded picture and providers that answer at once
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    captioner, generator = FakeCaptioner(), FakeGenerator()

    # When the caption step is delivered twice, Then it captions once and records who wrote the caption
    assert run_caption(aws, request_id, captioner).outcome == "done"
    assert run_caption(aws, request_id, captioner).outcome == "skipped"
    assert len(captioner.calls) == 1
    assert captioner.calls[0].source_format == "PNG"
    record = clients.store().get(request_id)
    assert (record.status, record.caption, record.caption_provider, record.caption_model) == (
        Status.CAPTIONED,
        "A red rectangle.",
        "fake",
        "fake-vision-1",
    )

    # When the generate step is delivered twice, Then one picture is made and stored
    assert run_generate(aws, request_id, generator).outcome == "done"
    assert run_generate(aws, request_id, generator).outcome == "skipped"
    assert len(generator.prompts) == 1 and "A red rectangle" in generator.prompts[0]
    record = clients.store().get(request_id)
    assert record.status is Status.COMPLETED and record.result_key == f"results/{request_id}.png"
    assert record.image_model == "fake-painter-2"
    listed = clients.s3().list_objects_v2(Bucket=aws.results_bucket)["Contents"]
    assert [o["Key"] for o in listed] == [record.result_key]

    # When the notify step is delivered twice, Then one mail is sent
    assert _notify(aws, request_id).outcome == "done"
    assert _notify(aws, request_id).outcome == "skipped"
    assert _sent(aws) == 1
    assert clients.store().get(request_id).notified_at is not None


def test_a_non_image_ends_failed_with_a_clear_code_and_is_notified(aws):
    # Given an upload that is text, not a picture
    request_id = create_request(aws)
    upload(aws, request_id, b"hello, I am text pretending to be a PNG")
    captioner = FakeCaptioner()
    # When the caption step runs
    outcome = run_caption(aws, request_id, captioner)
    # Then the request fails NOT_AN_IMAGE without a provider call, and its owner is told once
    assert (outcome.outcome, outcome.detail) == ("failed", "NOT_AN_IMAGE")
    assert captioner.calls == []
    record = clients.store().get(request_id)
    assert record.status is Status.FAILED and record.error.code == "NOT_AN_IMAGE"
    assert _notify(aws, request_id).outcome == "done"
    assert _sent(aws) == 1


def test_declared_type_must_match_the_bytes(aws):
    request_id = create_request(aws, content_type="image/jpeg")
    upload(aws, request_id, picture())
    assert run_caption(aws, request_id, FakeCaptioner()).detail == "CONTENT_TYPE_MISMATCH"


def test_declared_size_must_match_the_object(aws):
    data = picture()
    request_id = create_request(aws, size=len(data) + 1)
    upload(aws, request_id, data)
    assert run_caption(aws, request_id, FakeCaptioner()).detail == "UPLOAD_SIZE_MISMATCH"


def test_an_upload_over_the_limit_is_refused_before_download(aws):
    small = aws.model_copy(update={"max_upload_bytes": 100})
    request_id = create_request(small)
    upload(small, request_id, picture((300, 300)))
    assert run_caption(small, request_id, FakeCaptioner()).detail == "UPLOAD_TOO_LARGE"


def test_a_transient_provider_error_gives_the_step_back_for_a_retry(aws):
    # Given an upload and a captioner busy on its first call
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    captioner = FakeCaptioner(errors=[ProviderError("busy", code="PROVIDER_UNAVAILABLE")])
    # When the caption step runs, Then it raises for the source to retry, the request untouched
    with pytest.raises(ProviderError):
        run_caption(aws, request_id, captioner)
    assert clients.store().get(request_id).status is Status.PENDING_UPLOAD
    # And the retry captions it
    assert run_caption(aws, request_id, captioner).outcome == "done"
    assert len(captioner.calls) == 2


def test_retries_are_bounded_then_the_request_fails(aws):
    # Given a captioned request and a painter that is always down
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    run_caption(aws, request_id, FakeCaptioner())
    failing = FakeGenerator(errors=[ProviderError("down", code="PROVIDER_UNAVAILABLE")] * 10)
    # When the generate step is delivered max_attempts times
    for _ in range(aws.max_attempts - 1):
        with pytest.raises(ProviderError):
            run_generate(aws, request_id, failing)
    outcome = run_generate(aws, request_id, failing)
    # Then the last attempt ends the request FAILED, after exactly max_attempts calls
    assert (outcome.outcome, outcome.detail) == ("failed", "PROVIDER_UNAVAILABLE")
    assert len(failing.prompts) == aws.max_attempts
    assert clients.store().get(request_id).status is Status.FAILED


def test_a_permanent_provider_error_fails_at_once(aws):
    # Given an upload and a captioner that rejects it for good
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    rejected = ProviderError("bad request", code="PROVIDER_REJECTED", retryable=False)
    # When the caption step runs once, Then the request fails then
    outcome = run_caption(aws, request_id, FakeCaptioner(errors=[rejected]))
    assert (outcome.outcome, outcome.detail) == ("failed", "PROVIDER_REJECTED")


def _unavailable_captioner(model: str) -> FakeCaptioner:
    captioner = FakeCaptioner(errors=[ModelUnavailable(f"{model} is not served")])
    captioner.model = model
    return captioner


def test_the_record_names_the_model_of_the_chain_that_wrote_the_caption(aws):
    # Given a chain whose first model is no longer served
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    chain = CaptionChain([_unavailable_captioner("gone-vlm"), FakeCaptioner()])
    # When the caption step runs, Then the second model's caption is stored under its name
    assert run_caption(aws, request_id, chain).outcome == "done"
    record = clients.store().get(request_id)
    assert (record.status, record.caption_model) == (Status.CAPTIONED, "fake-vision-1")


def test_a_chain_with_no_model_left_fails_at_once_naming_the_models(aws):
    # Given a chain none of whose models is served
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    chain = CaptionChain([_unavailable_captioner("vlm-a"), _unavailable_captioner("vlm-b")])
    # When the caption step runs
    outcome = run_caption(aws, request_id, chain)
    # Then the request fails NO_MODEL_AVAILABLE, naming both
    error = clients.store().get(request_id).error
    assert (outcome.outcome, error.code, "vlm-a" in error.message and "vlm-b" in error.message) == (
        "failed",
        "NO_MODEL_AVAILABLE",
        True,
    )


def test_an_unexpected_error_releases_the_claim_and_propagates(aws):
    # Given an upload, When captioning meets a bug, Then the bug propagates and the claim is released
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    with pytest.raises(ZeroDivisionError):
        run_caption(aws, request_id, FakeCaptioner(errors=[ZeroDivisionError()]))
    assert clients.store().get(request_id).status is Status.PENDING_UPLOAD


def test_an_unexpected_error_on_the_last_attempt_ends_the_request_and_still_propagates(aws):
    # Given an upload whose captioning breaks the same way on every delivery the source makes
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    broken = FakeCaptioner(errors=[ZeroDivisionError("a bug")] * 10)
    # When the event source delivers it max_attempts times
    for attempt in range(1, aws.max_attempts + 1):
        with pytest.raises(ZeroDivisionError):
            run_caption(aws, request_id, broken)
        status = clients.store().get(request_id).status
        # Then it is given back for a retry each time but the last, which ends it where the user is told
        assert status is (Status.FAILED if attempt == aws.max_attempts else Status.PENDING_UPLOAD)
    record = clients.store().get(request_id)
    assert record.error.code == "INTERNAL_ERROR" and "a bug" not in record.error.message
    assert len(broken.calls) == aws.max_attempts
    # And a late duplicate finds nothing to do, and notify sends the one failure email
    assert run_caption(aws, request_id, broken).outcome == "skipped"
    assert _notify(aws, request_id).outcome == "done"
    assert _sent(aws) == 1


def _throttled(operation: str) -> ClientError:
    error = {"Code": "ProvisionedThroughputExceededException", "Message": "Rate of requests exceeds the allowed"}
    return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


def test_a_failure_to_save_the_result_gives_the_claim_back_for_a_retry(aws, monkeypatch):
    # Given a caption whose work succeeds but whose save (store.advance) is throttled once
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    store = clients.store()
    advance = store.advance
    failures = [_throttled("UpdateItem")]

    def throttled_once(*args, **kwargs):
        if failures:
            raise failures.pop()
        return advance(*args, **kwargs)

    monkeypatch.setattr(store, "advance", throttled_once)
    # When the first delivery fails to save, it propagates (so the event source retries)
    with pytest.raises(ClientError):
        run_caption(aws, request_id, FakeCaptioner())
    # Then the retry finds the step waiting, not leased, and completes it (it said "skipped" before)
    assert run_caption(aws, request_id, FakeCaptioner()).outcome == "done"


def test_a_failure_to_save_on_the_last_attempt_ends_the_request(aws, monkeypatch):
    # Given a save that is throttled on every attempt
    request_id = create_request(aws)
    upload(aws, request_id, picture())

    def always_throttled(*args, **kwargs):
        raise _throttled("UpdateItem")

    monkeypatch.setattr(clients.store(), "advance", always_throttled)
    for _ in range(aws.max_attempts):
        with pytest.raises(ClientError):
            run_caption(aws, request_id, FakeCaptioner())
    # Then the last attempt ends it FAILED with INTERNAL_ERROR, where the user is told
    record = clients.store().get(request_id)
    assert (record.status, record.error.code, record.lease_until) == (Status.FAILED, "INTERNAL_ERROR", None)


def test_notify_waits_for_a_final_state(aws):
    request_id = create_request(aws)
    assert _notify(aws, request_id).outcome == "skipped"
    assert _sent(aws) == 0


# ---- a worker that dies mid-step (item: a crash must not become a lost request) -----------------------


def _upload_event(settings, request_id: str, *, event_time: str = "2026-11-23T09:00:04.512Z") -> dict:
    """The S3 event of this request's upload (the sample's, re-addressed)."""
    event = load_event("s3_object_created.json")
    record = event["Records"][0]
    record["eventTime"] = event_time
    record["s3"]["bucket"]["name"] = settings.uploads_bucket
    record["s3"]["object"]["key"] = f"uploads/{request_id}"
    return event


def _dies_first(kind):
    """A provider whose first call ends the worker's process (as kill -9 or a timeout does): nothing
    after it runs, so the claim is left behind, leased."""
    return kind(errors=[SystemExit("killed")])


def test_the_retried_upload_event_finishes_captioning_that_a_dead_worker_began(aws, monkeypatch):
    # Given an upload whose caption worker died mid-call, leaving its claim leased
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    monkeypatch.setattr(caption_handler, "_captioner", lambda: _dies_first(FakeCaptioner))
    event = _upload_event(aws, request_id)
    with pytest.raises(SystemExit):
        caption_handler.handler(event, lambda_context("CaptionFunction", 60, 1024))
    # When Lambda retries that event (a minute later on AWS, well inside the lease)
    monkeypatch.setattr(caption_handler, "_captioner", FakeCaptioner)
    caption_handler.handler(event, lambda_context("CaptionFunction", 60, 1024))
    # Then the retry takes the step over and captions the photo
    assert clients.store().get(request_id).status is Status.CAPTIONED


def test_another_upload_event_meeting_a_live_claim_fails_its_invocation_instead_of_reporting_done(aws, monkeypatch):
    # Given an upload whose caption worker died mid-call, its lease still live
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    monkeypatch.setattr(caption_handler, "_captioner", lambda: _dies_first(FakeCaptioner))
    with pytest.raises(SystemExit):
        caption_handler.handler(_upload_event(aws, request_id), lambda_context("CaptionFunction", 60, 1024))
    # When a different event for the same object arrives while that lease lasts
    other = _upload_event(aws, request_id, event_time="2026-11-23T09:00:09.000Z")
    # Then its invocation fails, so Lambda delivers it again later, rather than counting the photo done
    with pytest.raises(LeaseHeld):
        caption_handler.handler(other, lambda_context("CaptionFunction", 60, 1024))


def _captioned_with_message(aws) -> tuple[str, dict]:
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    assert run_caption(aws, request_id, FakeCaptioner()).outcome == "done"
    stream_record = load_event("dynamodb_stream_captioned.json")["Records"][0]
    stream_record["dynamodb"]["Keys"]["id"]["S"] = request_id
    stream_record["dynamodb"]["NewImage"]["id"]["S"] = request_id
    return request_id, stream_record


def test_the_redelivered_message_finishes_a_picture_that_a_dead_worker_began(aws, monkeypatch):
    # Given a CAPTIONED request whose picture worker died mid-call, leaving its claim leased
    request_id, stream_record = _captioned_with_message(aws)
    monkeypatch.setattr(generate_handler, "_generator", lambda: _dies_first(FakeGenerator))
    with pytest.raises(SystemExit):
        generate_handler.handler(queue_event(stream_record), lambda_context("GenerateFunction", 120, 1024))
    # When SQS delivers the same message again
    monkeypatch.setattr(generate_handler, "_generator", FakeGenerator)
    response = generate_handler.handler(
        queue_event(stream_record, receive_count=2), lambda_context("GenerateFunction", 120, 1024)
    )
    # Then the redelivery takes the step over and the picture is made
    assert (response, clients.store().get(request_id).status) == ({"batchItemFailures": []}, Status.COMPLETED)


def test_another_message_meeting_a_live_claim_is_reported_failed_instead_of_done(aws, monkeypatch):
    # Given a CAPTIONED request whose picture worker died mid-call, its lease still live
    _, stream_record = _captioned_with_message(aws)
    monkeypatch.setattr(generate_handler, "_generator", lambda: _dies_first(FakeGenerator))
    with pytest.raises(SystemExit):
        generate_handler.handler(queue_event(stream_record), lambda_context("GenerateFunction", 120, 1024))
    # When a second message for the request (the stream record sent twice) arrives meanwhile
    twice = {**stream_record, "eventID": "another-event-id"}
    event = queue_event(twice)
    response = generate_handler.handler(event, lambda_context("GenerateFunction", 120, 1024))
    # Then that message is reported failed, so SQS delivers it again after its visibility timeout
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_a_step_whose_every_attempt_died_ends_failed_in_plain_words_at_the_next_delivery(aws):
    # Given an upload whose caption worker died on each of its max_attempts attempts
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    dying = FakeCaptioner(errors=[SystemExit("killed")] * aws.max_attempts)
    for _ in range(aws.max_attempts):
        with pytest.raises(SystemExit):
            run_caption(aws, request_id, dying, delivery="s3:the-upload-event")
    # When the event comes once more, Then the request ends FAILED, telling the user in plain words
    outcome = caption_upload(
        request_id,
        store=clients.store(),
        s3=clients.s3(),
        settings=aws,
        captioner=FakeCaptioner,
        deadline=Deadline.after(30),
        delivery="s3:the-upload-event",
    )
    assert (outcome.detail, clients.store().get(request_id).error.message) == (
        "RETRIES_EXHAUSTED",
        f"Your request could not be finished after {aws.max_attempts} tries. Please send the photo again.",
    )


def _overtaking(request_id: str, *, delivery: str, store=None):
    """Work during which another claim takes the step over (the clock of `store` may run ahead)."""

    def work(record):
        (store or clients.store()).claim(
            request_id,
            from_status=Status.PENDING_UPLOAD,
            working=Status.CAPTIONING,
            lease_seconds=90,
            delivery=delivery,
        )
        return {"caption": "late"}

    return work


def _run_caption(request_id, work, delivery):
    return run_step(
        CAPTION,
        request_id,
        store=clients.store(),
        deadline=Deadline.after(30),
        max_attempts=3,
        work=work,
        delivery=delivery,
    )


def test_a_worker_overtaken_by_a_later_attempt_of_its_own_delivery_leaves_the_answer_to_it(aws):
    # Given a worker whose step a later attempt of the same delivery takes over while it works
    request_id = create_request(aws)
    work = _overtaking(request_id, delivery="s3:the-event")
    # When it tries to save, Then it stands down without an error, and the step stays the later attempt's
    outcome = _run_caption(request_id, work, "s3:the-event")
    assert (outcome.outcome, clients.store().get(request_id).attempts) == ("superseded", 2)


def test_a_worker_overtaken_by_another_delivery_is_not_reported_done(aws):
    # Given a worker whose lease another delivery takes over (its clock past the lease) while it works
    request_id = create_request(aws)
    later = RequestStore(boto3.client("dynamodb"), aws.table_name, clock=lambda: utcnow() + timedelta(hours=1))
    work = _overtaking(request_id, delivery="s3:another-event", store=later)
    # When it tries to save, Then its delivery fails, to be delivered again later
    with pytest.raises(LeaseHeld):
        _run_caption(request_id, work, "s3:the-event")
