"""The local stack's EventBridge pipe (stream -> SQS) and SQS event source mapping, on moto's server, as
the template declares them: filtered records piped one a message, Lambda's SQS event shape, partial
failures retried at once, the queue's RedrivePolicy parking a message after maxReceiveCount receives,
the pipe's dead-letter record, and at most MaximumConcurrency invocations at once."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reimagine_emulator.delivery import FailureDestinations, PipeSource, QueueMapping
from reimagine_emulator.stack import EmbeddedStack
from reimagine_tools.template import Function
from tests.fixtures import fake_handlers
from tests.fixtures.moto_server import moto_server

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.13
    Timeout: 20
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
  Failures:
    Type: AWS::SQS::Queue
  Work:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 120
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt Failures.Arn
        maxReceiveCount: 2
  ToWork:
    Type: AWS::Pipes::Pipe
    Properties:
      RoleArn: arn:aws:iam::123456789012:role/unused-locally
      Source: !GetAtt Table.StreamArn
      SourceParameters:
        DynamoDBStreamParameters:
          StartingPosition: LATEST
          BatchSize: 10
          MaximumRetryAttempts: 1
          OnPartialBatchItemFailure: AUTOMATIC_BISECT
          DeadLetterConfig:
            Arn: !GetAtt Failures.Arn
        FilterCriteria:
          Filters:
            - Pattern: '{"dynamodb": {"NewImage": {"status": {"S": ["ready"]}}}}'
      Target: !GetAtt Work.Arn
  OnWork:
    Type: AWS::Serverless::Function
    Properties:
      Handler: tests.fixtures.fake_handlers.on_work
      ReservedConcurrentExecutions: 4
      Events:
        Queued:
          Type: SQS
          Properties:
            Queue: !GetAtt Work.Arn
            BatchSize: 2
            ScalingConfig: {MaximumConcurrency: 2}
            FunctionResponseTypes: [ReportBatchItemFailures]
"""


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def stack(moto_endpoint: str, tmp_path) -> Iterator[EmbeddedStack]:
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    fake_handlers.reset()
    started = EmbeddedStack(template, stack_name=f"q{uuid.uuid4().hex[:8]}", environments=False).start(moto_endpoint)
    yield started
    started.stop()


def put(stack: EmbeddedStack, item_id: str, status: str = "ready", mode: str = "ok") -> None:
    assert stack.app
    stack.client("dynamodb").put_item(
        TableName=stack.app.tables["Table"].name,
        Item={"id": {"S": item_id}, "status": {"S": status}, "mode": {"S": mode}},
    )


def messages(stack: EmbeddedStack, queue: str) -> list[dict[str, Any]]:
    assert stack.app
    sqs = stack.client("sqs")
    url = sqs.get_queue_url(QueueName=stack.app.queues[queue].name)["QueueUrl"]
    return [dict(m) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]


def delivered_keys(call: dict[str, Any]) -> list[str]:
    return [json.loads(r["body"])["dynamodb"]["Keys"]["id"]["S"] for r in call["Records"]]


def test_the_pipe_sends_each_filtered_record_and_the_mapping_invokes_with_lambdas_sqs_shape(stack):
    # Given one record the pipe's filter passes and one it does not
    put(stack, "a")
    put(stack, "d", status="draft")
    # When delivery drains
    stack.drain(timeout=20)
    # Then the function got one SQS record whose body is the stream record, in Lambda's SQS shape
    [call] = fake_handlers.CALLS["on_work"]
    [record] = call["Records"]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == (
        "aws:sqs",
        stack.app.queues["Work"].arn,
        "us-east-1",
    )
    assert set(record["attributes"]) == {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    }
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    body = json.loads(record["body"])
    assert (body["eventSource"], body["eventName"], body["dynamodb"]["Keys"]) == (
        "aws:dynamodb",
        "INSERT",
        {"id": {"S": "a"}},
    )
    assert body["eventSourceARN"] == stack.created.stream_arns["Table"]
    # And the message was deleted: nothing is left in either queue
    assert messages(stack, "Work") == [] and messages(stack, "Failures") == []


def test_a_reported_message_is_received_again_at_once_and_the_others_are_deleted(stack):
    # Given a batch whose second message fails the first time
    put(stack, "a")
    put(stack, "b", mode="fail-once")
    # When delivery drains
    stack.drain(timeout=20)
    # Then b came back with its receive count at 2 and then succeeded; a ran once
    counts = [
        (json.loads(r["body"])["dynamodb"]["Keys"]["id"]["S"], r["attributes"]["ApproximateReceiveCount"])
        for call in fake_handlers.CALLS["on_work"]
        for r in call["Records"]
    ]
    assert sorted(counts) == [("a", "1"), ("b", "1"), ("b", "2")]
    assert messages(stack, "Work") == [] and messages(stack, "Failures") == []


def test_a_message_failing_every_time_is_parked_by_the_queues_redrive_policy(stack):
    # Given a message that always fails (maxReceiveCount 2)
    put(stack, "p", mode="poison")
    # When delivery drains
    stack.drain(timeout=20)
    # Then it was received twice, then moved to the dead-letter queue with its body, the stream record
    assert [delivered_keys(call) for call in fake_handlers.CALLS["on_work"]] == [["p"], ["p"]]
    [parked] = messages(stack, "Failures")
    assert json.loads(parked["Body"])["dynamodb"]["Keys"] == {"id": {"S": "p"}}
    assert messages(stack, "Work") == []


def test_drain_waits_for_running_invocations_and_a_second_drain_finds_nothing(stack):
    for i in range(5):
        put(stack, f"r{i}")
    assert stack.drain(timeout=20) > 0
    assert stack.drain(timeout=20) == 0
    assert sorted(k for call in fake_handlers.CALLS["on_work"] for k in delivered_keys(call)) == [
        f"r{i}" for i in range(5)
    ]


def test_a_batch_the_queue_refuses_is_retried_halved_then_parked_in_pipes_dead_letter_shape(stack):
    # Given the pipe's target queue is gone (SendMessageBatch fails as a whole), MaximumRetryAttempts 1
    assert stack.app and stack.created
    pipe = stack.app.pipes["ToWork"]
    source = PipeSource(
        pipe,
        stack.created.stream_arns["Table"],
        stack.client("dynamodbstreams"),
        stack.client("sqs"),
        stack.created.queue_urls["Work"] + "-gone",
        FailureDestinations(stack.client("sqs")),
        stack.region,
        stack.app.context.account_id,
    )
    put(stack, "x")
    # When the pipe polls until it is caught up
    while source.poll():
        pass
    # Then its dead-letter queue holds the batch's position, with the pipe as the one that gave up
    [record] = [json.loads(m["Body"]) for m in messages(stack, "Failures")]
    assert record["context"]["partnerResourceArn"] == f"arn:aws:pipes:us-east-1:123456789012:pipe/{pipe.name}"
    assert record["context"]["condition"] == "RetryAttemptsExhausted"
    info = record["DDBStreamBatchInfo"]
    assert (info["batchSize"], info["streamArn"]) == (1, stack.created.stream_arns["Table"])
    assert info["startSequenceNumber"] == info["endSequenceNumber"]


class SlowInvoker:
    """Takes 0.2 s an invocation and records how many ran at once."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.calls = 0
        self._lock = threading.Lock()

    def invoke(self, fn: Function, event: Any) -> Any:
        with self._lock:
            self.running += 1
            self.calls += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(0.2)
        finally:
            with self._lock:
                self.running -= 1
        return {"batchItemFailures": []}


@pytest.mark.parametrize(("environments", "peak"), [(4, 2), (1, 1)], ids=["max-concurrency", "one-environment"])
def test_at_most_maximum_concurrency_invocations_run_at_once(stack, environments, peak):
    # Given 12 messages waiting, MaximumConcurrency 2, and a function that may run `environments` at once
    assert stack.app and stack.created
    sqs = stack.client("sqs")
    url = stack.created.queue_urls["Work"]
    for i in range(12):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": i}))
    fn = stack.app.functions["OnWork"]
    invoker = SlowInvoker()
    mapping = QueueMapping(
        fn,
        fn.queue_triggers[0],
        url,
        stack.app.queues["Work"].arn,
        sqs,
        invoker,  # type: ignore[arg-type]
        FailureDestinations(sqs),
        stack.region,
        concurrency=environments,
    )
    # When it polls until nothing is left or running
    try:
        while mapping.poll():
            pass
    finally:
        mapping.close()
    # Then every message was delivered (2 a batch), never more than `peak` at once
    assert (invoker.calls, invoker.peak) == (6, peak)
    assert messages(stack, "Work") == []
