"""The handlers accept every shape the backends really send: S3 records of eventVersion 2.1 with keys
URL-encoded either way (`%20` as LocalStack writes a space, `+` as AWS does), the `s3:TestEvent`
message, DynamoDB stream records of eventVersion 1.1 with ApproximateCreationDateTime as an epoch
number; and the records captured from LocalStack (events/localstack_*.json, see events/README.md)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import boto3
import pytest

from reimagine import clients
from reimagine.config import settings
from reimagine.handlers import caption, generate, notify
from reimagine.models import Status
from reimagine.records import from_item, to_item
from tests.fixtures.events import load_event
from tests.fixtures.lambda_context import lambda_context
from tests.fixtures.queue_events import piped

ROOT = Path(__file__).resolve().parents[2]
PHOTO = ROOT / "infra" / "reimagine_emulator" / "assets" / "sample.jpg"


S3_SAMPLE = load_event("localstack_s3_object_created.json")
STREAM_SAMPLE = load_event("localstack_dynamodb_stream_captioned.json")
TEST_EVENT_SAMPLE = load_event("localstack_s3_test_event.json")
CAPTURED_ID = STREAM_SAMPLE["Records"][0]["dynamodb"]["Keys"]["id"]["S"]


def _seed(status: Status, **update: Any) -> None:
    """The captured request as the table held it, in `status`."""
    record = from_item(STREAM_SAMPLE["Records"][0]["dynamodb"]["NewImage"])
    record = record.model_copy(update={"status": status, "lease_until": None, "attempts": 0, **update})
    clients.dynamodb().put_item(TableName=settings().table_name, Item=to_item(record))


def _s3_event(bucket: str, key: str) -> dict[str, Any]:
    event = copy.deepcopy(S3_SAMPLE)
    event["Records"][0]["s3"]["bucket"]["name"] = bucket
    event["Records"][0]["s3"]["object"]["key"] = key
    return event


# The captured samples are what they claim to be ------------------------------------------------------


def test_the_captured_samples_have_the_documented_versions_and_types():
    s3_record = S3_SAMPLE["Records"][0]
    assert (s3_record["eventSource"], s3_record["eventVersion"]) == ("aws:s3", "2.1")
    assert s3_record["s3"]["object"]["key"] == f"uploads/{CAPTURED_ID}"
    assert TEST_EVENT_SAMPLE["Event"] == "s3:TestEvent"
    stream_record = STREAM_SAMPLE["Records"][0]
    assert (stream_record["eventSource"], stream_record["eventVersion"]) == ("aws:dynamodb", "1.1")
    assert isinstance(stream_record["dynamodb"]["ApproximateCreationDateTime"], int)
    assert stream_record["dynamodb"]["NewImage"]["status"] == {"S": "CAPTIONED"}


# S3 ---------------------------------------------------------------------------------------------------


def test_caption_works_on_the_captured_localstack_notification(aws):
    _seed(Status.PENDING_UPLOAD, caption=None, caption_provider=None, declared_size=PHOTO.stat().st_size)
    boto3.client("s3").put_object(Bucket=aws.uploads_bucket, Key=f"uploads/{CAPTURED_ID}", Body=PHOTO.read_bytes())

    result = caption.handler(
        _s3_event(aws.uploads_bucket, S3_SAMPLE["Records"][0]["s3"]["object"]["key"]),
        lambda_context("shapes", 60, 1024),
    )

    assert result == {"processed": 1}
    assert clients.store().get(CAPTURED_ID).status == Status.CAPTIONED


def test_caption_ignores_the_captured_localstack_test_event(aws):
    _seed(Status.PENDING_UPLOAD, caption=None, caption_provider=None)
    event = {**TEST_EVENT_SAMPLE, "Bucket": aws.uploads_bucket}
    assert caption.handler(event, lambda_context("shapes", 60, 1024)) == {"processed": 0}
    assert clients.store().get(CAPTURED_ID).status == Status.PENDING_UPLOAD


@pytest.mark.parametrize(
    ("key_in_event", "decoded"),
    [
        ("uploads/my%20photo.jpg", "uploads/my photo.jpg"),  # LocalStack
        ("uploads/my+photo.jpg", "uploads/my photo.jpg"),  # AWS
        ("uploads/a%2Bb.jpg", "uploads/a+b.jpg"),  # a literal plus, either backend
        ("uploads%2Fmy%20photo.jpg", "uploads/my photo.jpg"),  # an encoded slash too
    ],
)
def test_caption_decodes_keys_before_looking_for_a_request_id(aws, monkeypatch, key_in_event, decoded):
    seen: list[str] = []
    real = caption.request_id_from_upload_key

    def spy(key: str) -> str | None:
        seen.append(key)
        return real(key)

    monkeypatch.setattr(caption, "request_id_from_upload_key", spy)
    assert caption.handler(_s3_event(aws.uploads_bucket, key_in_event), lambda_context("shapes", 60, 1024)) == {
        "processed": 0
    }
    assert seen == [decoded]


def test_caption_finds_the_request_behind_an_encoded_slash(aws):
    _seed(Status.PENDING_UPLOAD, caption=None, caption_provider=None, declared_size=PHOTO.stat().st_size)
    boto3.client("s3").put_object(Bucket=aws.uploads_bucket, Key=f"uploads/{CAPTURED_ID}", Body=PHOTO.read_bytes())
    event = _s3_event(aws.uploads_bucket, f"uploads%2F{CAPTURED_ID}")
    assert caption.handler(event, lambda_context("shapes", 60, 1024)) == {"processed": 1}
    assert clients.store().get(CAPTURED_ID).status == Status.CAPTIONED


# DynamoDB streams --------------------------------------------------------------------------------------


def test_generate_works_on_the_captured_localstack_stream_record(aws):
    _seed(Status.CAPTIONED)
    assert generate.handler(piped(STREAM_SAMPLE), lambda_context("shapes", 60, 1024)) == {"batchItemFailures": []}
    assert clients.store().get(CAPTURED_ID).status == Status.COMPLETED
    head = boto3.client("s3").head_object(Bucket=aws.results_bucket, Key=f"results/{CAPTURED_ID}.png")
    assert head["ContentLength"] > 0


@pytest.mark.parametrize("created", [1795429020, 1795429020.0, 1795429020.512], ids=["int", "float", "fraction"])
def test_stream_records_of_version_1_1_with_an_epoch_creation_time(aws, created):
    event = copy.deepcopy(STREAM_SAMPLE)
    record = event["Records"][0]
    record["eventVersion"] = "1.1"
    record["dynamodb"]["ApproximateCreationDateTime"] = created
    _seed(Status.CAPTIONED)
    assert generate.handler(piped(event), lambda_context("shapes", 60, 1024)) == {"batchItemFailures": []}
    assert clients.store().get(CAPTURED_ID).status == Status.COMPLETED

    # The same shape, status COMPLETED, for NotifyFunction: one email.
    completed = copy.deepcopy(event)
    completed["Records"][0]["dynamodb"]["OldImage"] = record["dynamodb"]["NewImage"]
    completed["Records"][0]["dynamodb"]["NewImage"] = to_item(clients.store().get(CAPTURED_ID))
    assert notify.handler(completed, lambda_context("shapes", 60, 1024)) == {"batchItemFailures": []}
    assert boto3.client("ses").get_send_quota()["SentLast24Hours"] == 1
