"""Re-drives against the local stack: `reimagine redrive` sends what the on-failure queue holds back
through the pipeline from each request's current state, deleting the messages once handled; the
sweeper re-drives a caption whose worker died by having S3 announce the upload again."""

from __future__ import annotations

import pytest

from reimagine_tools.cli import main
from tests.integration.conftest import ROOT, Pipeline, image_bytes

pytestmark = pytest.mark.integration


def _redrive(pipeline: Pipeline, capsys: pytest.CaptureFixture[str], *extra: str) -> list[str]:
    argv = ["redrive", "--endpoint-url", str(pipeline.stack.endpoint_url), "--stack", pipeline.stack.stack_name]
    assert main([*argv, "-t", str(ROOT / "template.yaml"), "--region", pipeline.stack.region, *extra]) == 0
    # The functions ran in this process too: their JSON log lines share stdout with the command's.
    return [line for line in capsys.readouterr().out.splitlines() if not line.startswith("{")]


def test_a_parked_notify_batch_is_re_driven_into_exactly_one_email(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
):
    sender = pipeline.app.functions["NotifyFunction"].environment["SENDER_EMAIL"]
    ses = pipeline.stack.client("ses")
    address = "redrive@example.com"
    # Given a request that completed while SES refused the sender, its notify batch parked
    ses.delete_identity(Identity=sender)
    try:
        request_id = pipeline.submit(image_bytes("PNG"), "image/png", email=address)
    finally:
        ses.verify_email_identity(EmailAddress=sender)
    assert pipeline.mail_to(address) == []

    # When the operator looks first (dry run), nothing changes and the message stays
    (dry,) = _redrive(pipeline, capsys, "--dry-run")
    assert f"stream batch from {pipeline.app.functions['NotifyFunction'].name}" in dry
    assert f"{request_id} COMPLETED unnotified -> would touch for Notify" in dry and dry.endswith("[left (dry run)]")
    pipeline.stack.drain()
    assert pipeline.mail_to(address) == []

    # When the operator re-drives
    (line,) = _redrive(pipeline, capsys)
    pipeline.stack.drain()
    # Then the request is touched for Notify, the message deleted, and exactly one email goes out
    assert f"{request_id} COMPLETED unnotified -> touched for Notify" in line and line.endswith("[deleted]")
    assert len(pipeline.mail_to(address)) == 1
    assert "notified_at" in pipeline.status(request_id)
    # And a second run finds the queue empty
    assert _redrive(pipeline, capsys) == []


def test_a_caption_whose_worker_died_and_whose_event_was_spent_is_re_driven_to_one_email(pipeline: Pipeline):
    address = "dead-caption@example.com"
    table = pipeline.app.tables["RequestsTable"].name
    stuck_after = int(pipeline.app.functions["SweeperFunction"].environment["STUCK_AFTER_SECONDS"])
    (announcements,) = [
        q for q in pipeline.stack.created.notification_queues if q.function.logical_id == "CaptionFunction"
    ]
    # Given an uploaded photo whose caption worker died mid-step (its claim left behind, leased) and
    # whose upload event's retries were all spent (its message gone)
    data = image_bytes("PNG")
    created = pipeline.create(address, "image/png", len(data))
    assert pipeline.upload(created, data).status_code == 204
    pipeline.stack.client("sqs").purge_queue(QueueUrl=announcements.queue_url)
    pipeline.stack.client("dynamodb").update_item(
        TableName=table,
        Key={"id": {"S": created["id"]}},
        UpdateExpression="SET #s = :captioning, lease_until = :expired, leased_by = :dead, attempts = :one",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":captioning": {"S": "CAPTIONING"},
            ":expired": {"N": "1"},
            ":dead": {"S": "s3:the-event-that-died"},
            ":one": {"N": "1"},
        },
    )
    pipeline.stack.drain()
    # When it has sat past StuckAfterSeconds and the sweeper runs
    pipeline.age(created["id"], stuck_after + 1)
    pipeline.sweep()
    pipeline.stack.drain()
    # Then S3 announced the upload again, and the photo went all the way, with one email
    assert (pipeline.status(created["id"])["status"], len(pipeline.mail_to(address))) == ("COMPLETED", 1)
