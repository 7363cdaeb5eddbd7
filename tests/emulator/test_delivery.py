"""Local event delivery on moto's server: S3 notifications and DynamoDB stream mappings, as the
template declares them (batch size, filters, partial batch failures, bisect, retries, on-failure)."""

from __future__ import annotations

import json
import logging
import uuid
from email import policy
from email.parser import BytesParser
from urllib.parse import unquote_plus

import pytest

from reimagine_emulator.invoke import EnvironmentConflict, union_environment
from reimagine_emulator.outbox import LEDGER, Outbox, list_outbox, parse_localstack_mail
from reimagine_emulator.stack import EmbeddedStack
from reimagine_tools.template import read_application
from tests.fixtures import fake_handlers
from tests.fixtures.moto_server import moto_server

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.11
    Timeout: 20
    MemorySize: 256
    Environment:
      Variables:
        TABLE_NAME: !Ref Table
Resources:
  Inbox:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub ${AWS::StackName}-inbox
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
      TimeToLiveSpecification: {AttributeName: expires_at, Enabled: true}
  Failures:
    Type: AWS::SQS::Queue
  OnUpload:
    Type: AWS::Serverless::Function
    Properties:
      Handler: tests.fixtures.fake_handlers.on_upload
      EventInvokeConfig:
        MaximumRetryAttempts: 1
        DestinationConfig:
          OnFailure: {Type: SQS, Destination: !GetAtt Failures.Arn}
      Events:
        Upload:
          Type: S3
          Properties:
            Bucket: !Ref Inbox
            Events: s3:ObjectCreated:*
            Filter: {S3Key: {Rules: [{Name: prefix, Value: incoming/}]}}
  OnChange:
    Type: AWS::Serverless::Function
    Properties:
      Handler: tests.fixtures.fake_handlers.on_change
      Events:
        Ready:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Table.StreamArn
            StartingPosition: LATEST
            BatchSize: 3
            FunctionResponseTypes: [ReportBatchItemFailures]
            BisectBatchOnFunctionError: true
            MaximumRetryAttempts: 2
            DestinationConfig:
              OnFailure: {Type: SQS, Destination: !GetAtt Failures.Arn}
            FilterCriteria:
              Filters:
                - Pattern: '{"dynamodb": {"NewImage": {"status": {"S": ["ready"]}}}}'
  OnEveryChange:
    Type: AWS::Serverless::Function
    Properties:
      Handler: tests.fixtures.fake_handlers.on_every_change
      Events:
        All:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Table.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 100
"""

MAILER = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Inbox:
    Type: AWS::S3::Bucket
  Mailer:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.13
      Handler: tests.fixtures.fake_handlers.mailer
      Environment:
        Variables:
          SENDER_EMAIL: robot@example.com
      Events:
        Upload:
          Type: S3
          Properties:
            Bucket: !Ref Inbox
            Events: s3:ObjectCreated:*
"""


@pytest.fixture(scope="module")
def moto_endpoint():
    with moto_server() as url:
        yield url


@pytest.fixture
def stack(moto_endpoint, tmp_path):
    """A fresh stack of TEMPLATE (its own names) on the module's moto server."""
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    fake_handlers.reset()
    # In this process: the fake handlers record what they get in this module's state.
    started = EmbeddedStack(template, stack_name=f"t{uuid.uuid4().hex[:8]}", environments=False).start(moto_endpoint)
    yield started
    started.stop()


def drain(stack: EmbeddedStack) -> int:
    # On moto's server (recognised by its /moto-api/) one quiet pass means everything was delivered.
    return stack.drain(timeout=20)


def put(stack: EmbeddedStack, item_id: str, status: str = "ready", mode: str = "ok") -> None:
    stack.client("dynamodb").put_item(
        TableName=stack.app.tables["Table"].name,
        Item={"id": {"S": item_id}, "status": {"S": status}, "mode": {"S": mode}},
    )


def failures(stack: EmbeddedStack) -> list[dict]:
    sqs = stack.client("sqs")
    url = sqs.get_queue_url(QueueName=stack.app.queues["Failures"].name)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


# S3 ---------------------------------------------------------------------------------------------------


def test_s3_notification_invokes_once_per_object_with_the_s3_record(stack, caplog):
    caplog.set_level(logging.INFO, logger="reimagine_emulator")
    # Given two objects under the trigger's prefix and one outside it
    s3, bucket = stack.client("s3"), stack.app.buckets["Inbox"].name
    for key in ("incoming/a.jpg", "incoming/b.jpg", "elsewhere/c.jpg"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    # When delivery drains
    drain(stack)
    # Then the function ran once per matching object, with S3's event untouched
    events = fake_handlers.CALLS["on_upload"]
    assert len(events) == 2
    for event in events:
        assert list(event) == ["Records"] and len(event["Records"]) == 1
        record = event["Records"][0]
        assert record["eventSource"] == "aws:s3"
        assert record["eventName"].startswith("ObjectCreated:")
        assert record["s3"]["bucket"]["name"] == bucket
    keys = sorted(unquote_plus(e["Records"][0]["s3"]["object"]["key"]) for e in events)
    assert keys == ["incoming/a.jpg", "incoming/b.jpg"]
    assert failures(stack) == []
    # And each delivery logged one line: function, source, key, outcome, time
    lines = [r.getMessage() for r in caplog.records if r.name == "reimagine_emulator" and " s3 " in r.getMessage()]
    assert sorted(line.rsplit(" ", 2)[0] for line in lines) == [
        "OnUpload s3 incoming/a.jpg ok",
        "OnUpload s3 incoming/b.jpg ok",
    ]


def test_s3_failure_is_retried_then_recorded_in_the_on_failure_queue(stack):
    # Given an object the function always fails on (EventInvokeConfig: 1 retry)
    stack.client("s3").put_object(Bucket=stack.app.buckets["Inbox"].name, Key="incoming/fail.jpg", Body=b"x")
    # When delivery drains
    drain(stack)
    # Then it ran 1 + 1 times and an async-invocation failure record landed in the queue
    assert len(fake_handlers.CALLS["on_upload"]) == 2
    [record] = failures(stack)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestContext"]["functionArn"].startswith(stack.app.functions["OnUpload"].arn)
    assert record["requestPayload"] == fake_handlers.CALLS["on_upload"][0]
    assert record["responsePayload"] == {"errorMessage": "cannot process this upload", "errorType": "RuntimeError"}


# Streams ----------------------------------------------------------------------------------------------


def test_stream_filter_and_batch_size_and_independent_positions(stack):
    # Given 7 items that pass OnChange's filter and 2 that do not
    for i in range(7):
        put(stack, f"r{i}")
    put(stack, "d1", status="draft")
    put(stack, "d2", status="draft")
    # When delivery drains
    drain(stack)
    # Then OnChange saw only the ready ones, in order, in batches of at most 3
    assert fake_handlers.CALLS["on_change"] == [["r0", "r1", "r2"], ["r3", "r4", "r5"], ["r6"]]
    # And OnEveryChange, a second mapping on the same stream, saw every record in one batch
    [every] = fake_handlers.CALLS["on_every_change"]
    assert [r["dynamodb"]["Keys"]["id"]["S"] for r in every["Records"]] == [
        *(f"r{i}" for i in range(7)),
        "d1",
        "d2",
    ]


def test_stream_records_have_lambdas_shape(stack):
    put(stack, "a", status="draft")
    stack.client("dynamodb").update_item(
        TableName=stack.app.tables["Table"].name,
        Key={"id": {"S": "a"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "ready"}},
    )
    drain(stack)
    inserted, modified = fake_handlers.CALLS["on_every_change"][0]["Records"]
    assert inserted["eventName"] == "INSERT" and modified["eventName"] == "MODIFY"
    for record in (inserted, modified):
        assert record["eventVersion"] == "1.1"
        assert record["eventSource"] == "aws:dynamodb"
        assert record["awsRegion"] == "us-east-1"
        assert record["eventSourceARN"] == stack.created.stream_arns["Table"]
        assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int | float)
        assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert record["dynamodb"]["Keys"] == {"id": {"S": "a"}}
        assert record["dynamodb"]["SequenceNumber"].isdigit()
    assert "OldImage" not in inserted["dynamodb"]
    assert modified["dynamodb"]["OldImage"]["status"] == {"S": "draft"}
    assert modified["dynamodb"]["NewImage"]["status"] == {"S": "ready"}
    # Only the MODIFY passes OnChange's filter
    assert fake_handlers.CALLS["on_change"] == [["a"]]


def test_partial_batch_failure_retries_from_the_failed_record(stack):
    # Given a batch whose middle record is reported failed the first time
    put(stack, "a")
    put(stack, "b", mode="fail-once")
    put(stack, "c")
    # When delivery drains
    drain(stack)
    # Then the retry starts at b: a is checkpointed, c comes again with b
    assert fake_handlers.CALLS["on_change"] == [["a", "b", "c"], ["b", "c"]]
    assert failures(stack) == []


def test_bisect_isolates_a_poison_record_and_retries_are_bounded(stack):
    # Given a poison record between two good ones (MaximumRetryAttempts 2, bisect on)
    put(stack, "a")
    put(stack, "b", mode="poison")
    put(stack, "c")
    # When delivery drains
    drain(stack)
    # Then the batch is split until b is alone, b is retried twice, then skipped; a and c succeed
    assert fake_handlers.CALLS["on_change"] == [
        ["a", "b", "c"],
        ["a", "b"],
        ["a"],
        ["b", "c"],
        ["b"],
        ["b"],
        ["b"],
        ["c"],
    ]
    # And b's batch metadata went to the on-failure queue
    [record] = failures(stack)
    info = record["DDBStreamBatchInfo"]
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["functionArn"] == stack.app.functions["OnChange"].arn
    assert info["batchSize"] == 1
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert info["streamArn"] == stack.created.stream_arns["Table"]
    assert info["shardId"].startswith("shardId-")


def test_drain_terminates_and_a_second_drain_finds_nothing(stack):
    put(stack, "a")
    assert drain(stack) > 0
    assert drain(stack) == 0
    assert fake_handlers.CALLS["on_change"] == [["a"]]


def test_handlers_get_a_lambda_context_and_their_environment(stack):
    put(stack, "a")
    drain(stack)
    [context] = fake_handlers.CONTEXTS
    fn = stack.app.functions["OnChange"]
    assert context["function_name"] == fn.name
    assert context["arn"] == fn.arn
    assert context["memory"] == 256
    assert 0 < context["remaining_ms"] <= 20_000
    uuid.UUID(context["request_id"])
    assert context["table_env"] == stack.app.tables["Table"].name


def test_background_delivery_delivers_without_drain(stack):
    stack.start_background_delivery(interval=0.05)
    stack.client("s3").put_object(Bucket=stack.app.buckets["Inbox"].name, Key="incoming/bg.jpg", Body=b"x")
    assert fake_handlers.DELIVERED.wait(timeout=10)
    stack.delivery.stop_background()
    assert len(fake_handlers.CALLS["on_upload"]) == 1


def test_environment_stops_at_disagreeing_functions(tmp_path):
    template = tmp_path / "template.yaml"
    template.write_text(
        TEMPLATE.replace(
            "      Handler: tests.fixtures.fake_handlers.on_every_change\n",
            "      Handler: tests.fixtures.fake_handlers.on_every_change\n"
            "      Environment: {Variables: {TABLE_NAME: other}}\n",
        )
    )
    app = read_application(template)
    with pytest.raises(EnvironmentConflict, match="TABLE_NAME"):
        union_environment(app.functions.values())


def test_outbox_collects_sent_mail_as_eml(tmp_path):
    # Given a stack on its own moto server, with an outbox
    template = tmp_path / "template.yaml"
    template.write_text(MAILER)
    outbox = tmp_path / "outbox"
    # In this process: the fake handlers record what they get in this module's state.
    with EmbeddedStack(template, stack_name="mail", outbox_dir=outbox, environments=False).start() as stack:
        # When a function sends mail through SES
        stack.client("s3").put_object(Bucket=stack.app.buckets["Inbox"].name, Key="pic.jpg", Body=b"x")
        stack.drain(timeout=20)
    # Then it is in the outbox as an RFC 5322 message with text and HTML parts
    [entry] = list_outbox(outbox)
    assert entry.to == "someone@example.com"
    assert entry.subject == "got pic.jpg"
    message = BytesParser(policy=policy.default).parsebytes(entry.file.read_bytes())
    assert message["From"] == "robot@example.com"
    assert message["Message-ID"]
    assert "pic.jpg" in message.get_body(("plain",)).get_content()
    assert "https://x.example/pic.jpg" in message.get_body(("html",)).get_content()


def test_localstack_mail_is_written_like_moto_mail(tmp_path):
    # Given LocalStack's /_aws/ses answer: one message from before the outbox, then two new ones
    old = {"Id": "old", "Source": "a@example.com", "Subject": "old", "Body": {"text_part": "old"}}
    payload: dict = {"messages": [old]}
    outbox = Outbox(tmp_path, lambda: parse_localstack_mail(payload))
    payload["messages"] += [
        {
            "Id": f"id-{n}",
            "Region": "us-east-1",
            "Source": "robot@example.com",
            "Destination": {"ToAddresses": [f"user{n}@example.com"]},
            "Subject": f"subject {n}",
            "Body": {"text_part": f"text {n}", "html_part": f"<p>html {n}</p>"},
            "Timestamp": f"2024-05-0{n}T10:00:00",
        }
        for n in (1, 2)
    ]
    # When the outbox collects twice
    assert len(outbox.collect()) == 2
    assert outbox.collect() == []
    # Then each message is one file, newest first
    entries = list_outbox(tmp_path)
    assert [(e.to, e.subject, e.date.day) for e in entries] == [
        ("user2@example.com", "subject 2", 2),
        ("user1@example.com", "subject 1", 1),
    ]
    message = BytesParser(policy=policy.default).parsebytes(entries[0].file.read_bytes())
    assert message.get_body(("plain",)).get_content().strip() == "text 2"
    assert message.get_body(("html",)).get_content().strip() == "<p>html 2</p>"


def localstack_message(n: int) -> dict:
    return {
        "Id": f"id-{n}",
        "Source": "robot@example.com",
        "Destination": {"ToAddresses": [f"user{n}@example.com"]},
        "Subject": f"subject {n}",
        "Body": {"text_part": f"text {n}"},
        "Timestamp": f"2024-05-0{n}T10:00:00",
    }


def test_an_outbox_opened_again_collects_what_was_sent_while_it_was_down(tmp_path):
    # Given an outbox that collected one message, then went down (the stack killed mid-burst)
    payload: dict = {"messages": []}
    source = lambda: parse_localstack_mail(payload)  # noqa: E731
    first = Outbox(tmp_path, source)
    payload["messages"].append(localstack_message(1))
    first.collect()
    # When two more are sent while it is down and the stack starts again on the same folder
    payload["messages"] += [localstack_message(2), localstack_message(3)]
    Outbox(tmp_path, source).collect()
    # Then the folder holds each of the three once
    assert sorted(e.subject for e in list_outbox(tmp_path)) == ["subject 1", "subject 2", "subject 3"]


def test_a_message_written_just_before_a_kill_is_not_written_again(tmp_path):
    # Given an outbox whose ledger lost the last line (killed between the .eml and its ledger entry)
    payload: dict = {"messages": []}
    source = lambda: parse_localstack_mail(payload)  # noqa: E731
    first = Outbox(tmp_path, source)
    payload["messages"].append(localstack_message(1))
    first.collect()
    (tmp_path / LEDGER).write_text("")
    # When the stack starts again on the same folder
    Outbox(tmp_path, source).collect()
    # Then the message is still there once
    assert [e.subject for e in list_outbox(tmp_path)] == ["subject 1"]
