"""Each function accepts its sample event from events/ (shaped as AWS sends it) and does its work on it."""

from __future__ import annotations

import copy
import io

import boto3
from PIL import Image

from reimagine import clients
from reimagine.config import settings
from reimagine.handlers import caption, generate, notify
from reimagine.models import Status
from reimagine.records import from_item, to_item
from tests.fixtures.events import load_event
from tests.fixtures.lambda_context import lambda_context
from tests.fixtures.queue_events import piped

RID = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"


def _seed(stream_sample: str) -> dict:
    """Put the sample's OldImage in the table: the state the record was in when the event was sent."""
    event = load_event(stream_sample)
    old = from_item(event["Records"][0]["dynamodb"]["OldImage"])
    clients.dynamodb().put_item(
        TableName=settings().table_name,
        Item=to_item(old.model_copy(update={"lease_until": None, "attempts": 0})),
    )
    return event


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 120, 255)).save(out, "PNG")
    return out.getvalue()


def test_caption_accepts_the_s3_sample(aws):
    # Given the sample's request waiting for its upload, and the upload in the bucket
    event = load_event("s3_object_created.json")
    record = event["Records"][0]["s3"]
    generated = _seed("dynamodb_stream_captioned.json")
    pending = from_item(generated["Records"][0]["dynamodb"]["OldImage"])
    clients.dynamodb().put_item(
        TableName=aws.table_name,
        Item=to_item(
            pending.model_copy(
                update={
                    "status": Status.PENDING_UPLOAD,
                    "caption": None,
                    "content_type": "image/png",
                    "declared_size": None,
                }
            )
        ),
    )
    local = copy.deepcopy(event)
    local["Records"][0]["s3"]["bucket"]["name"] = aws.uploads_bucket
    boto3.client("s3").put_object(Bucket=aws.uploads_bucket, Key=record["object"]["key"], Body=_png())

    # When the S3 sample reaches CaptionFunction, Then it captions that request
    assert caption.handler(local, lambda_context("sample", 60, 1024)) == {"processed": 1}
    assert clients.store().get(RID).status == "CAPTIONED"


def test_caption_ignores_the_s3_test_event(aws):
    # Given the test event S3 sends when a notification is configured
    test_event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-11-23T09:00:00.000Z",
        "Bucket": aws.uploads_bucket,
    }
    # When it reaches CaptionFunction, Then nothing is processed
    assert caption.handler(test_event, lambda_context("sample", 60, 1024)) == {"processed": 0}


def test_the_generate_queue_sample_is_the_captioned_record_as_the_pipe_sends_it():
    # The SQS sample is written from the factory every test uses, around the stream sample.
    assert load_event("sqs_generate_captioned.json") == piped(load_event("dynamodb_stream_captioned.json"))


def test_generate_accepts_the_generate_queue_sample(aws):
    stream = _seed("dynamodb_stream_captioned.json")
    old = from_item(stream["Records"][0]["dynamodb"]["OldImage"])
    clients.store().advance(RID, from_status=old.status, to=Status.CAPTIONED, caption="a blue square")
    event = load_event("sqs_generate_captioned.json")
    assert generate.handler(event, lambda_context("sample", 60, 1024)) == {"batchItemFailures": []}
    assert clients.store().get(RID).status == "COMPLETED"
    assert boto3.client("s3").head_object(Bucket=aws.results_bucket, Key=f"results/{RID}.png")["ContentLength"] > 0


def test_notify_accepts_the_completed_stream_sample(aws):
    event = _seed("dynamodb_stream_completed.json")
    clients.store().advance(RID, from_status=Status.GENERATING, to=Status.COMPLETED, result_key=f"results/{RID}.png")
    assert notify.handler(event, lambda_context("sample", 60, 1024)) == {"batchItemFailures": []}
    assert notify.handler(event, lambda_context("sample", 60, 1024)) == {
        "batchItemFailures": []
    }  # redelivered: no second email
    assert boto3.client("ses").get_send_quota()["SentLast24Hours"] == 1
    assert clients.store().get(RID).notified_at is not None
