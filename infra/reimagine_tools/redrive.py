"""`reimagine redrive`: what sits in the on-failure queue goes back through the pipeline.

Four kinds of message land there:
- Lambda's on-failure records (AWS Lambda developer guide, "Retaining records of asynchronous
  invocations" and "Retaining discarded batches for a DynamoDB event source"): asynchronous
  invocations (the S3 upload events) with `requestContext`, `responseContext` and the original event
  as `requestPayload`; stream batches (NotifyFunction's mapping) with `requestContext`,
  `responseContext` and `DDBStreamBatchInfo` (`shardId`, `startSequenceNumber`, `endSequenceNumber`,
  `streamArn`): the records themselves are not in the message and are read back from the stream
  (which keeps them 24 hours);
- GeneratePipe's dead-letter records: the same `DDBStreamBatchInfo`, with the pipe named in
  `context.partnerResourceArn` instead of a `requestContext`;
- GenerateQueue's messages that its RedrivePolicy moved after maxReceiveCount receives: the message
  itself, whose body is the stream record the pipe sent (`dynamodb.Keys.id` names the request).

Each request a message names is re-driven from its CURRENT state, so the normal steps pick it up
and their claims keep the work single: an upload not yet captioned gets its S3 event again
(`reimagine.storage.reannounce_upload`, as the sweeper does: the object copied onto itself, which S3
announces as ObjectCreated:Copy); a caption waiting for generation, or a generation whose worker
died, is touched back to CAPTIONED; a finished request whose email never went out is touched for
Notify. A message is deleted only once every request in it has been re-driven or needs nothing more;
otherwise it stays for a later run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from reimagine.models import Status, is_request_id, request_id_from_upload_key, upload_key
from reimagine.records import RequestStore, StuckCandidate
from reimagine.storage import UploadGone, is_missing, reannounce_upload

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

    from reimagine_tools.template import Application

# An operator's re-drive is deliberate, so it is not held to the sweeper's MAX_REDRIVES; this bound
# (the most the settings allow) only stops a request that fails every time from being pushed forever.
OPERATOR_MAX_REDRIVES = 10
_UPLOAD_GONE = "{}, upload gone: nothing to re-drive (the sweeper ends it)"


@dataclass(frozen=True)
class Targets:
    """Where one stack's failures are, and what re-driving them touches."""

    queue_url: str
    table: str
    uploads_bucket: str


@dataclass
class Outcome:
    """What re-driving one message did (or, in a dry run, would do)."""

    message_id: str
    kind: str  # "upload event", "stream batch", "queued stream record", "unknown"
    source: str  # the function that gave up
    actions: list[str] = field(default_factory=list)
    handled: bool = True  # every request in it re-driven or needing nothing more

    def line(self, *, deleted: bool) -> str:
        state = "deleted" if deleted else ("kept" if not self.handled else "left (dry run)")
        return (
            f"{self.message_id}  {self.kind} from {self.source}: {'; '.join(self.actions) or 'no requests'}  [{state}]"
        )


@dataclass
class Redriver:
    sqs: SQSClient
    dynamodb: DynamoDBClient
    streams: DynamoDBStreamsClient
    s3: S3Client
    targets: Targets
    dry_run: bool = False
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self.store = RequestStore(self.dynamodb, self.targets.table)

    def run(self, *, limit: int = 100) -> Iterator[str]:
        """One line per message, at most `limit` messages; each seen once per run."""
        seen: set[str] = set()
        kept: list[str] = []  # receipt handles, made visible again at the end for a later run
        try:
            while len(seen) < limit:
                received = self.sqs.receive_message(
                    QueueUrl=self.targets.queue_url,
                    MaxNumberOfMessages=min(10, limit - len(seen)),
                    # Hidden while this run works, so it is not received twice within the run.
                    VisibilityTimeout=300,
                    WaitTimeSeconds=0,
                ).get("Messages", [])
                fresh = [m for m in received if m["MessageId"] not in seen]
                if not fresh:
                    return
                for message in fresh:
                    seen.add(message["MessageId"])
                    outcome = self.redrive_message(message["MessageId"], message.get("Body", ""))
                    deleted = outcome.handled and not self.dry_run
                    if deleted:
                        self.sqs.delete_message(QueueUrl=self.targets.queue_url, ReceiptHandle=message["ReceiptHandle"])
                    else:
                        kept.append(message["ReceiptHandle"])
                    yield outcome.line(deleted=deleted)
        finally:
            for handle in kept:
                self.sqs.change_message_visibility(
                    QueueUrl=self.targets.queue_url, ReceiptHandle=handle, VisibilityTimeout=0
                )

    # ---- one message --------------------------------------------------------------------------

    def redrive_message(self, message_id: str, body: str) -> Outcome:
        try:
            record = json.loads(body)
        except ValueError:
            return Outcome(message_id, "unknown", "?", ["not JSON"], handled=False)
        if not isinstance(record, dict):
            return Outcome(message_id, "unknown", "?", ["not an on-failure record"], handled=False)
        source = _source_name(record)
        if isinstance(record.get("dynamodb"), dict):
            outcome = Outcome(message_id, "queued stream record", "GenerateQueue")
            request_id = (record["dynamodb"].get("Keys") or {}).get("id", {}).get("S")
            if not is_request_id(str(request_id)):
                return Outcome(message_id, "unknown", "GenerateQueue", ["a stream record without a request id"], False)
            ids = [str(request_id)]
        elif isinstance(record.get("requestPayload"), dict):
            outcome = Outcome(message_id, "upload event", source)
            ids = _upload_ids(record["requestPayload"])
        elif isinstance(record.get("DDBStreamBatchInfo"), dict):
            outcome = Outcome(message_id, "stream batch", source)
            try:
                ids = self._stream_ids(record["DDBStreamBatchInfo"])
            except ClientError as exc:
                outcome.actions.append(f"stream records unreadable ({_code(exc)}; kept 24 h by the stream)")
                outcome.handled = False
                return outcome
        else:
            reason = "neither requestPayload, DDBStreamBatchInfo nor a stream record"
            return Outcome(message_id, "unknown", source, [reason], False)
        for request_id in ids:
            try:
                action, done = self.redrive_request(request_id)
            except ClientError as exc:
                action, done = f"error {_code(exc)}", False
            outcome.actions.append(f"{request_id} {action}")
            outcome.handled = outcome.handled and done
        return outcome

    def _stream_ids(self, info: dict[str, Any]) -> list[str]:
        """The request ids of the records from start to end sequence number, read back from the stream."""
        start, end = str(info["startSequenceNumber"]), str(info["endSequenceNumber"])
        iterator: str | None = self.streams.get_shard_iterator(
            StreamArn=str(info["streamArn"]),
            ShardId=str(info["shardId"]),
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=start,
        )["ShardIterator"]
        ids: list[str] = []
        while iterator:
            response = self.streams.get_records(ShardIterator=iterator, Limit=100)
            records = response.get("Records", [])
            for raw in records:
                sequence = raw["dynamodb"].get("SequenceNumber", "")
                if int(sequence) > int(end):
                    return ids
                request_id = (raw["dynamodb"].get("Keys") or {}).get("id", {}).get("S")
                if request_id and request_id not in ids:
                    ids.append(request_id)
                if int(sequence) == int(end):
                    return ids
            if not records:
                return ids
            iterator = response.get("NextShardIterator")
        return ids

    # ---- one request --------------------------------------------------------------------------

    def redrive_request(self, request_id: str) -> tuple[str, bool]:
        """(what was done, whether the request needs nothing more from this message)."""
        item = self.dynamodb.get_item(TableName=self.targets.table, Key={"id": {"S": request_id}}, ConsistentRead=True)
        if "Item" not in item:
            return "no such request (expired?): nothing to do", True
        record = self.store.get(request_id)
        assert record is not None
        seen = StuckCandidate.model_validate(
            {**record.model_dump(), "updated_at": item["Item"]["updated_at"]["S"], **_counters(item["Item"])}
        )
        now = int(self.clock().timestamp())
        status = record.status
        if status in (Status.PENDING_UPLOAD, Status.CAPTIONING):
            if status is Status.CAPTIONING and (record.lease_until or 0) >= now:
                return f"{status.value}, being captioned: nothing to do", True
            return self._resend_upload(request_id, status)
        if status is Status.GENERATING and (record.lease_until or 0) >= now:
            return "GENERATING, being generated: nothing to do", True
        if status in (Status.CAPTIONED, Status.GENERATING):
            if self.dry_run:
                return f"{status.value} -> would touch back to CAPTIONED", True
            done = self.store.redrive(seen, to=Status.CAPTIONED, max_redrives=OPERATOR_MAX_REDRIVES)
            return (f"{status.value} -> touched back to CAPTIONED", True) if done else (f"{status.value}: raced", False)
        # Final.
        if record.notified_at is not None:
            return f"{status.value}, notified: nothing to do", True
        if record.notify_error is not None:
            return f"{status.value}, email refused ({record.notify_error.code}): nothing to do", True
        if (record.notify_claimed_until or 0) >= now:
            return f"{status.value}, email being sent: nothing to do", True
        if self.dry_run:
            return f"{status.value} unnotified -> would touch for Notify", True
        done = self.store.redrive_notification(seen, max_redrives=OPERATOR_MAX_REDRIVES)
        return (f"{status.value} unnotified -> touched for Notify", True) if done else (f"{status.value}: raced", False)

    def _resend_upload(self, request_id: str, status: Status) -> tuple[str, bool]:
        bucket, key = self.targets.uploads_bucket, upload_key(request_id)
        try:
            if self.dry_run:
                self.s3.head_object(Bucket=bucket, Key=key)
                return f"{status.value} -> would re-send the upload event", True
            # The sweeper's and the confirmation's way back into captioning: S3 announces the upload again.
            reannounce_upload(self.s3, bucket=bucket, key=key)
        except UploadGone:
            return _UPLOAD_GONE.format(status.value), True
        except ClientError as exc:
            if is_missing(exc):
                return _UPLOAD_GONE.format(status.value), True
            raise
        return f"{status.value} -> upload event re-sent", True


def _source_name(record: dict[str, Any]) -> str:
    """Who gave up: the function of a Lambda record, the pipe of a Pipes dead-letter record."""
    function = str((record.get("requestContext") or {}).get("functionArn", "")).split(":")
    if len(function) > 6:
        return function[6]
    pipe = str((record.get("context") or {}).get("partnerResourceArn", ""))
    return pipe.rsplit("/", 1)[-1] if ":pipes:" in pipe else "?"


def _upload_ids(payload: dict[str, Any]) -> list[str]:
    ids = []
    for record in payload.get("Records") or []:
        key = unquote_plus(str(((record.get("s3") or {}).get("object") or {}).get("key", "")))
        request_id = request_id_from_upload_key(key)
        if request_id and request_id not in ids:
            ids.append(request_id)
    return ids


def _counters(item: dict[str, Any]) -> dict[str, int]:
    return {name: int(item[name]["N"]) for name in ("redrives", "notify_redrives") if name in item}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "?"))


# ---- finding a stack's queue, table and bucket ----------------------------------------------------

STACK_OUTPUTS = {"FailureQueueUrl": "queue_url", "RequestsTableName": "table", "UploadsBucketName": "uploads_bucket"}


def targets_from_outputs(outputs: list[dict[str, Any]]) -> Targets | None:
    """From a deployed stack's Outputs (CloudFormation DescribeStacks); None if one is missing."""
    values = {
        STACK_OUTPUTS[o["OutputKey"]]: str(o["OutputValue"]) for o in outputs if o.get("OutputKey") in STACK_OUTPUTS
    }
    return Targets(**values) if len(values) == len(STACK_OUTPUTS) else None


def targets_from_template(app: Application, sqs: SQSClient) -> Targets:
    """As the local stack names them (no CloudFormation there): from the template, for one stack name."""
    caption = app.functions["CaptionFunction"]
    (queue_arn,) = {caption.invoke_config.on_failure} - {None}
    queue = app.queue_for_arn(str(queue_arn))
    return Targets(
        queue_url=sqs.get_queue_url(QueueName=queue.name)["QueueUrl"],
        table=caption.environment["TABLE_NAME"],
        uploads_bucket=caption.environment["UPLOADS_BUCKET"],
    )
