"""Delivery side by side: stream batches up to ParallelizationFactor (one item's records in order), and
S3 events up to the function's concurrency.

Each source is driven directly with an invoker that takes its time and counts how many invocations
overlap, on moto's server with the table, stream, bucket and queue of a small template.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from reimagine_emulator.delivery import FailureDestinations, S3Notifications, StreamMapping
from reimagine_emulator.stack import EmbeddedStack
from reimagine_tools.template import Function

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.11
    Timeout: 20
Resources:
  Inbox:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub ${AWS::StackName}-inbox
  OnUpload:
    Type: AWS::Serverless::Function
    Properties:
      Handler: tests.fixtures.fake_handlers.on_upload
      Events:
        Upload:
          Type: S3
          Properties:
            Bucket: !Ref Inbox
            Events: s3:ObjectCreated:*
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
  Side:
    Type: AWS::Serverless::Function
    Properties:
      Handler: tests.fixtures.fake_handlers.on_change
      Events:
        Changed:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Table.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 1
            ParallelizationFactor: 4
  Serial:
    Type: AWS::Serverless::Function
    Properties:
      Handler: tests.fixtures.fake_handlers.on_change
      Events:
        Changed:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Table.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 1
"""
ITEMS, WRITES, UPLOADS = 8, 3, 6


class SlowInvoker:
    """Takes 0.1 s an invocation; remembers the peak overlap and the order each item's writes arrived in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self.peak = 0
        self.order: defaultdict[str, list[int]] = defaultdict(list)

    def invoke(self, fn: Function, event: dict[str, Any], *, wait: bool = True) -> dict[str, Any]:
        with self._lock:
            self._running += 1
            self.peak = max(self.peak, self._running)
        time.sleep(0.1)
        with self._lock:
            self._running -= 1
            for record in event["Records"]:
                if "dynamodb" in record:
                    image = record["dynamodb"]["NewImage"]
                    self.order[image["id"]["S"]].append(int(image["n"]["N"]))
        return {"batchItemFailures": []}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    template = tmp_path_factory.mktemp("parallel") / "template.yaml"
    template.write_text(TEMPLATE)
    # In this process: the fake handlers record what they get in this module's state.
    with EmbeddedStack(template, stack_name=f"p{uuid.uuid4().hex[:8]}", environments=False).start() as started:
        table = started.app.tables["Table"].name
        for n in range(WRITES):
            for i in range(ITEMS):
                started.client("dynamodb").put_item(
                    TableName=table, Item={"id": {"S": f"item-{i}"}, "n": {"N": str(n)}}
                )
        yield started


def upload(stack: EmbeddedStack) -> None:
    assert stack.app
    for i in range(UPLOADS):
        stack.client("s3").put_object(Bucket=stack.app.buckets["Inbox"].name, Key=f"photo-{i}", Body=b"x")


def deliver(stack: EmbeddedStack, function: str) -> SlowInvoker:
    assert stack.app and stack.created
    fn = stack.app.functions[function]
    (trigger,) = fn.stream_triggers
    invoker = SlowInvoker()
    mapping = StreamMapping(
        fn,
        trigger,
        stack.created.stream_arns[trigger.table],
        stack.client("dynamodbstreams"),
        invoker,
        FailureDestinations(stack.client("sqs")),
        stack.region,
    )
    while mapping.poll():
        pass
    return invoker


def test_a_shard_runs_up_to_parallelization_factor_batches_at_once(stack: EmbeddedStack) -> None:
    assert deliver(stack, "Side").peak == 4


def test_without_parallelization_factor_a_shard_runs_one_batch_at_a_time(stack: EmbeddedStack) -> None:
    assert deliver(stack, "Serial").peak == 1


def test_records_of_one_item_keep_their_order_across_lanes(stack: EmbeddedStack) -> None:
    order = deliver(stack, "Side").order
    assert dict(order) == {f"item-{i}": list(range(WRITES)) for i in range(ITEMS)}


def deliver_uploads(stack: EmbeddedStack, concurrency: int) -> SlowInvoker:
    assert stack.created
    (queue,) = stack.created.notification_queues
    invoker = SlowInvoker()
    notifications = S3Notifications(
        queue.function,
        queue.trigger,
        queue.queue_url,
        stack.client("sqs"),
        invoker,
        FailureDestinations(stack.client("sqs")),
        concurrency=concurrency,
    )
    while notifications.poll():
        pass
    return invoker


@pytest.mark.parametrize(("concurrency", "peak"), [(3, 3), (1, 1)])
def test_s3_events_are_invoked_up_to_the_functions_concurrency_at_once(
    stack: EmbeddedStack, concurrency: int, peak: int
) -> None:
    # Given six uploads waiting in the trigger's queue
    upload(stack)
    # When they are delivered with room for `concurrency` invocations at once
    invoker = deliver_uploads(stack, concurrency)
    # Then no more than that overlap, and no fewer when there is work for them
    assert invoker.peak == peak


# One delivery in flight per S3 event ------------------------------------------------------------------


class CountingInvoker:
    """Takes `seconds` an invocation and counts the invocations of each object key."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self.keys: defaultdict[str, int] = defaultdict(int)

    def invoke(self, fn: Function, event: dict[str, Any], *, wait: bool = True) -> None:
        with self._lock:
            for record in event["Records"]:
                self.keys[record["s3"]["object"]["key"]] += 1
        time.sleep(self.seconds)


@pytest.fixture
def one_second_queue(stack: EmbeddedStack) -> Iterator[str]:
    """The trigger's queue with a 1 s VisibilityTimeout: what SQS's default 30 s is to a longer caption."""
    assert stack.created
    (queue,) = stack.created.notification_queues
    sqs = stack.client("sqs")
    sqs.set_queue_attributes(QueueUrl=queue.queue_url, Attributes={"VisibilityTimeout": "1"})
    yield queue.queue_url
    sqs.set_queue_attributes(QueueUrl=queue.queue_url, Attributes={"VisibilityTimeout": "30"})


def deliver_slowly(stack: EmbeddedStack, invoker: CountingInvoker, visibility_seconds: int | None = None) -> None:
    assert stack.created
    (queue,) = stack.created.notification_queues
    lease = {} if visibility_seconds is None else {"visibility_seconds": visibility_seconds}
    notifications = S3Notifications(
        queue.function,
        queue.trigger,
        queue.queue_url,
        stack.client("sqs"),
        invoker,  # type: ignore[arg-type]
        FailureDestinations(stack.client("sqs")),
        concurrency=2,  # a free worker that would take the event again if SQS handed it out
        **lease,  # type: ignore[arg-type]
    )
    try:
        while notifications.poll():
            pass
    finally:
        notifications.close()


@pytest.mark.timeout(60)
def test_an_s3_event_running_longer_than_the_queues_visibility_is_invoked_once(
    stack: EmbeddedStack, one_second_queue: str
) -> None:
    # Given one upload in a queue whose visibility timeout is shorter than the invocation
    assert stack.app
    stack.client("s3").put_object(Bucket=stack.app.buckets["Inbox"].name, Key="long-caption", Body=b"x")
    # When it is delivered by two workers and its invocation takes three times that visibility
    invoker = CountingInvoker(seconds=3)
    deliver_slowly(stack, invoker)
    # Then it was invoked exactly once
    assert dict(invoker.keys) == {"long-caption": 1}


@pytest.mark.timeout(60)
def test_an_s3_event_held_past_its_lease_is_kept_invisible_until_done(
    stack: EmbeddedStack, one_second_queue: str
) -> None:
    # Given one upload, received with a 2 s lease (a function whose Timeout is far shorter than its run)
    assert stack.app
    stack.client("s3").put_object(Bucket=stack.app.buckets["Inbox"].name, Key="held", Body=b"x")
    # When its invocation runs for twice that lease beside a free worker
    invoker = CountingInvoker(seconds=4)
    deliver_slowly(stack, invoker, visibility_seconds=2)
    # Then the lease was extended while it ran: invoked exactly once
    assert dict(invoker.keys) == {"held": 1}
