"""GenerateFunction on GenerateQueue's messages (stream records as GeneratePipe sends them): one picture
per valid message, malformed messages dropped without logging their content, failures reported by
messageId so that SQS retries only those."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from reimagine import clients
from reimagine.handlers import generate, streams
from reimagine.models import RequestRecord, Status, new_request_id, utcnow
from tests.fixtures.events import load_event
from tests.fixtures.lambda_context import lambda_context
from tests.fixtures.queue_events import piped, queue_event

CONTEXT = ("GenerateFunction", 120, 1024)


def _captioned() -> str:
    """A request waiting for its picture, as CaptionFunction leaves it."""
    now = utcnow()
    record = RequestRecord(
        id=new_request_id(),
        status=Status.CAPTIONED,
        email="jane@example.com",
        content_type="image/png",
        caption="A red rectangle.",
        caption_provider="offline",
        created_at=now,
        updated_at=now,
        expires_at=int((now + timedelta(days=30)).timestamp()),
    )
    clients.store().create(record)
    return record.id


def _stream_record(request_id: str) -> dict[str, Any]:
    """The CAPTIONED stream record of that request (the sample's, re-keyed)."""
    (record,) = load_event("dynamodb_stream_captioned.json")["Records"]
    record["dynamodb"]["Keys"]["id"]["S"] = request_id
    record["dynamodb"]["NewImage"]["id"]["S"] = request_id
    return record


class FailingPuts:
    """An S3 client whose result uploads fail with a 500 for the given keys (a transient fault)."""

    def __init__(self, real: Any, failing_ids: set[str]) -> None:
        self.real, self.failing_ids = real, failing_ids

    def put_object(self, **kwargs: Any) -> Any:
        if any(request_id in kwargs["Key"] for request_id in self.failing_ids):
            raise ClientError({"Error": {"Code": "InternalError", "Message": "try again"}}, "PutObject")
        return self.real.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_message_with_a_captioned_record_gets_its_picture(aws):
    # Given a CAPTIONED request and the message the pipe sent for it
    request_id = _captioned()
    event = queue_event(_stream_record(request_id))
    # When Generate handles the message
    response = generate.handler(event, lambda_context(*CONTEXT))
    # Then the request is COMPLETED and the message is not reported (SQS deletes it)
    assert response == {"batchItemFailures": []}
    assert clients.store().get(request_id).status == Status.COMPLETED


@pytest.mark.parametrize(
    "body",
    ["not json {", "[1, 2]", json.dumps({"dynamodb": {"Keys": {"id": {"S": "../../etc/passwd"}}}}), "{}"],
    ids=["not-json", "not-an-object", "invalid-id", "no-keys"],
)
def test_a_message_without_a_request_id_is_dropped_and_its_body_never_logged(aws, body, caplog):
    # Given a message that can never name a request
    event = queue_event(body)
    # When Generate handles it
    with caplog.at_level(logging.WARNING):
        response = generate.handler(event, lambda_context(*CONTEXT))
    # Then it is not retried (not reported), and the warning does not carry the body
    assert response == {"batchItemFailures": []}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["ignoring a queue message without a request id"]
    assert all(body not in str(r.__dict__) for r in caplog.records)


def test_a_failed_picture_is_reported_by_its_message_id_and_the_others_complete(aws, monkeypatch):
    # Given two CAPTIONED requests in one batch, and S3 refusing the first one's result for now
    failing, fine = _captioned(), _captioned()
    refusing = FailingPuts(clients.s3(), {failing})
    monkeypatch.setattr(clients, "s3", lambda: refusing)
    event = piped({"Records": [_stream_record(failing), _stream_record(fine)]})
    # When Generate handles the batch
    response = generate.handler(event, lambda_context(*CONTEXT))
    # Then only the failed message is reported, by its SQS messageId
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert clients.store().get(fine).status == Status.COMPLETED
    assert clients.store().get(failing).status != Status.COMPLETED


def test_each_outcome_is_counted_once(aws, monkeypatch):
    request_id = _captioned()
    counted: list[str] = []
    monkeypatch.setattr(streams.metrics, "add_metric", lambda name, **_: counted.append(name))
    generate.handler(queue_event(_stream_record(request_id)), lambda_context(*CONTEXT))
    generate.handler(queue_event(_stream_record(request_id), receive_count=2), lambda_context(*CONTEXT))
    # The redelivered message finds the request already COMPLETED: the picture is made once.
    assert counted == ["Generate_done", "Generate_skipped"]
