"""`reimagine redrive`'s logic on moto: on-failure records in Lambda's documented shapes, each request
re-driven from its current state, a message deleted only once handled."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

import boto3
import pytest

from reimagine import clients
from reimagine.models import RequestRecord, Status, new_request_id, upload_key, utcnow
from reimagine_tools.redrive import Redriver, Targets, targets_from_outputs
from tests.fixtures.events import load_event

NOTIFY_ARN = "arn:aws:lambda:us-east-1:123456789012:function:reimagine-NotifyFunction-Ab12Cd34Ef56"
CAPTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:reimagine-CaptionFunction-Gh78Ij90Kl12"


def _async_failure(request_id: str) -> dict[str, Any]:
    """An asynchronous invocation's on-failure record (Lambda developer guide): the event as requestPayload."""
    payload = load_event("s3_object_created.json")
    payload["Records"][0]["s3"]["object"]["key"] = upload_key(request_id)
    return {
        "version": "1.0",
        "timestamp": "2026-11-23T09:03:05.568Z",
        "requestContext": {
            "requestId": "e4b46cbf-b738-4f1a-8880-a18cdf61200e",
            "functionArn": f"{CAPTION_ARN}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "Task timed out after 60.00 seconds"},
    }


def _stream_failure(stream_arn: str, shard_id: str) -> dict[str, Any]:
    """A stream batch's on-failure record: only where the batch was (DDBStreamBatchInfo), not the records."""
    return {
        "requestContext": {
            "requestId": "316aa6d0-8154-4c2b-9af7-85d5f4a6bc81",
            "functionArn": NOTIFY_ARN,
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 4,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-11-23T09:13:49.717Z",
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": "800000000003126276362",
            "endSequenceNumber": "800000000003126276362",
            "approximateArrivalOfFirstRecord": "2026-11-23T09:13:19Z",
            "approximateArrivalOfLastRecord": "2026-11-23T09:13:19Z",
            "batchSize": 1,
            "streamArn": stream_arn,
        },
    }


@pytest.fixture
def world(aws):
    """The fixture's table and buckets, an on-failure queue, and a queue the uploads bucket notifies."""
    sqs = boto3.client("sqs")
    failures = sqs.create_queue(QueueName="reimagine-failures")["QueueUrl"]
    announced = sqs.create_queue(QueueName="reimagine-uploads-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=announced, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("s3").put_bucket_notification_configuration(
        Bucket=aws.uploads_bucket,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    _announced(sqs, announced)  # the s3:TestEvent
    targets = Targets(queue_url=failures, table=aws.table_name, uploads_bucket=aws.uploads_bucket)
    return sqs, targets, announced


def _redriver(targets: Targets, *, dry_run: bool = False) -> Redriver:
    return Redriver(
        boto3.client("sqs"),
        clients.dynamodb(),
        boto3.client("dynamodbstreams"),
        clients.s3(),
        targets,
        dry_run=dry_run,
    )


def _request(status: Status, **fields: Any) -> str:
    now = utcnow()
    record = RequestRecord(
        id=new_request_id(),
        status=status,
        email="jane@example.com",
        content_type="image/png",
        created_at=now,
        updated_at=now,
        expires_at=int((now + timedelta(days=30)).timestamp()),
        **fields,
    )
    clients.store().create(record)
    return record.id


def _park(sqs, targets: Targets, body: dict[str, Any] | str) -> None:
    sqs.send_message(QueueUrl=targets.queue_url, MessageBody=body if isinstance(body, str) else json.dumps(body))


def _left(sqs, targets: Targets) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=targets.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _announced(sqs, queue_url: str) -> list[str]:
    """The S3 events the uploads bucket announced since the last look (taken off the queue)."""
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return [r["eventName"] for m in messages for r in json.loads(m["Body"]).get("Records", [])]


def test_an_upload_never_captioned_gets_its_s3_event_again(world):
    # Given a request whose upload event exhausted CaptionFunction's retries before it was claimed
    sqs, targets, announced = world
    request_id = _request(Status.PENDING_UPLOAD)
    clients.s3().put_object(
        Bucket=targets.uploads_bucket, Key=upload_key(request_id), Body=b"png", ContentType="image/png"
    )
    _announced(sqs, announced)  # the upload's own event, long since handled
    _park(sqs, targets, _async_failure(request_id))
    # When it is re-driven
    (line,) = _redriver(targets).run()
    # Then S3 announces the upload again (the object copied onto itself), unchanged, and the message is gone
    assert f"upload event from {CAPTION_ARN.split(':')[6]}: {request_id} PENDING_UPLOAD -> upload event re-sent" in line
    assert line.endswith("[deleted]")
    assert _announced(sqs, announced) == ["ObjectCreated:Copy"]
    head = clients.s3().head_object(Bucket=targets.uploads_bucket, Key=upload_key(request_id))
    assert head["ContentType"] == "image/png" and head["ContentLength"] == 3
    assert _left(sqs, targets) == 0


@pytest.mark.parametrize(("dry_run", "state"), [(False, "deleted"), (True, "left (dry run)")], ids=["run", "dry run"])
def test_an_upload_that_is_gone_has_nothing_to_re_drive(world, dry_run: bool, state: str):
    # Given a request whose upload event gave up, and whose upload has since left the bucket
    sqs, targets, announced = world
    request_id = _request(Status.PENDING_UPLOAD)
    _park(sqs, targets, _async_failure(request_id))
    # When it is re-driven (or looked at first)
    (line,) = _redriver(targets, dry_run=dry_run).run()
    # Then nothing is announced, and the line says why (the sweeper ends such a request)
    assert f"{request_id} PENDING_UPLOAD, upload gone: nothing to re-drive (the sweeper ends it)" in line
    assert line.endswith(f"[{state}]") and _announced(sqs, announced) == []


def test_a_request_already_done_needs_nothing_and_its_message_is_deleted(world):
    sqs, targets, announced = world
    request_id = _request(Status.COMPLETED, notified_at=utcnow())
    _park(sqs, targets, _async_failure(request_id))

    (line,) = _redriver(targets).run()

    assert f"{request_id} COMPLETED, notified: nothing to do" in line and line.endswith("[deleted]")
    assert _announced(sqs, announced) == [] and _left(sqs, targets) == 0


def test_a_finished_request_never_notified_is_touched_for_notify(world):
    # Given a FAILED request whose notification never went, its event parked in the failure queue
    sqs, targets, _ = world
    request_id = _request(Status.FAILED, notify_claimed_until=0)
    before = clients.store().get(request_id)
    _park(sqs, targets, _async_failure(request_id))

    # When redrive runs
    (line,) = _redriver(targets).run()

    # Then the record is touched so the stream delivers it to Notify again
    after = clients.store().get(request_id)
    assert f"{request_id} FAILED unnotified -> touched for Notify" in line
    assert before is not None and after is not None
    assert after.notify_claimed_until is None and after.updated_at >= before.updated_at


def test_a_dry_run_changes_nothing_and_keeps_the_message(world):
    # Given a CAPTIONED request's event parked in the failure queue
    sqs, targets, _ = world
    request_id = _request(Status.CAPTIONED, caption="a red square")
    before = clients.dynamodb().get_item(TableName=targets.table, Key={"id": {"S": request_id}})["Item"]
    _park(sqs, targets, _async_failure(request_id))

    # When redrive runs dry
    (line,) = _redriver(targets, dry_run=True).run()

    # Then it says what it would do, and changes neither the record nor the queue
    assert f"{request_id} CAPTIONED -> would touch back to CAPTIONED" in line and line.endswith("[left (dry run)]")
    assert clients.dynamodb().get_item(TableName=targets.table, Key={"id": {"S": request_id}})["Item"] == before
    assert _left(sqs, targets) == 1
    # And the message is visible again at once, so the real run finds it
    (again,) = _redriver(targets).run()
    assert "touched back to CAPTIONED" in again and again.endswith("[deleted]")


def test_a_message_that_is_not_an_on_failure_record_is_kept(world):
    sqs, targets, _ = world
    _park(sqs, targets, "not json at all")
    _park(sqs, targets, {"hello": "world"})

    lines = _redriver(targets).run()

    assert sorted(line.split("  ", 1)[1] for line in lines) == [
        "unknown from ?: neither requestPayload, DDBStreamBatchInfo nor a stream record  [kept]",
        "unknown from ?: not JSON  [kept]",
    ]
    assert _left(sqs, targets) == 2


def test_a_stream_batch_whose_records_cannot_be_read_is_kept(world):
    # Given a parked batch of a stream that is gone (its table was re-created, say)
    sqs, targets, _ = world
    gone = "arn:aws:dynamodb:us-east-1:123456789012:table/reimagine-old/stream/2026-11-01T00:00:00.000"
    _park(sqs, targets, _stream_failure(gone, "shardId-00000001573689847184-864758bb"))
    # When it is re-driven, it says why and keeps the message
    (line,) = _redriver(targets).run()
    assert f"stream batch from {NOTIFY_ARN.split(':')[6]}: stream records unreadable" in line
    assert line.endswith("[kept]") and _left(sqs, targets) == 1


def test_a_generate_queue_message_parked_by_its_redrive_policy_is_touched_back_to_captioned(world):
    # Given the stream record GeneratePipe sent, moved to the failure queue after maxReceiveCount receives
    sqs, targets, _ = world
    request_id = _request(Status.CAPTIONED, caption="a red square")
    stream = load_event("dynamodb_stream_captioned.json")["Records"][0]
    stream["dynamodb"]["Keys"]["id"]["S"] = request_id
    _park(sqs, targets, stream)
    # When it is re-driven
    (line,) = _redriver(targets).run()
    # Then the request is touched back to CAPTIONED (the pipe sends it to the queue again) and the message deleted
    assert f"queued stream record from GenerateQueue: {request_id} CAPTIONED -> touched back to CAPTIONED" in line
    assert line.endswith("[deleted]") and _left(sqs, targets) == 0


def test_a_queued_stream_record_without_a_request_id_is_kept(world):
    sqs, targets, _ = world
    _park(sqs, targets, {"dynamodb": {"Keys": {"id": {"S": "../not-an-id"}}}})
    (line,) = _redriver(targets).run()
    assert line.split("  ", 1)[1] == "unknown from GenerateQueue: a stream record without a request id  [kept]"


def test_a_pipe_dead_letter_record_is_read_back_from_the_stream_and_names_the_pipe(world):
    # Given Pipes' dead-letter record for a batch it could not send: the pipe in `context`, the batch's position
    sqs, targets, _ = world
    gone = "arn:aws:dynamodb:us-east-1:123456789012:table/reimagine-old/stream/2026-11-01T00:00:00.000"
    record = _stream_failure(gone, "shardId-00000001573689847184-864758bb")
    del record["requestContext"], record["responseContext"]
    record["context"] = {
        "partnerResourceArn": "arn:aws:pipes:us-east-1:123456789012:pipe/reimagine-GeneratePipe-Q1W2E3",
        "condition": "RetryAttemptsExhausted",
        "requestId": "5f0a1c3e-0d5e-4d9b-9a6b-1b2c3d4e5f60",
    }
    _park(sqs, targets, record)
    # When it is re-driven: the stream is read back as for Lambda's record (here: a stream that is gone)
    (line,) = _redriver(targets).run()
    assert "stream batch from reimagine-GeneratePipe-Q1W2E3: stream records unreadable" in line
    assert line.endswith("[kept]")


def test_a_deployed_stack_is_found_by_its_outputs():
    outputs = [
        {"OutputKey": "ApiUrl", "OutputValue": "https://abc.execute-api.us-east-1.amazonaws.com/"},
        {"OutputKey": "FailureQueueUrl", "OutputValue": "https://sqs.us-east-1.amazonaws.com/123456789012/q"},
        {"OutputKey": "RequestsTableName", "OutputValue": "reimagine-RequestsTable-1A2B3C"},
        {"OutputKey": "UploadsBucketName", "OutputValue": "reimagine-uploads-123456789012-us-east-1"},
    ]
    assert targets_from_outputs(outputs) == Targets(
        "https://sqs.us-east-1.amazonaws.com/123456789012/q",
        "reimagine-RequestsTable-1A2B3C",
        "reimagine-uploads-123456789012-us-east-1",
    )
    assert targets_from_outputs(copy.deepcopy(outputs[:2])) is None
