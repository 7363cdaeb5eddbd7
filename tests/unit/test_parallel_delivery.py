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

from reimagine_local.delivery import FailureDestinations, S3Notifications, StreamMapping
from reimagine_local.stack import EmbeddedStack
from reimagine_local.template import Function

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
      Handler: tests.unit.fake_handlers.on_upload
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
      Handler: tests.unit.fake_handlers.on_change
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
      Handler: tests.unit.fake_handlers.on_change
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
