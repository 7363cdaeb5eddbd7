"""SES refusing to send for a while loses no email: the request finishes, and once SES is back the
sweeper re-drives the notification, so exactly one email goes out."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import Pipeline, image_bytes

pytestmark = pytest.mark.integration


def test_an_ses_outage_recovers_on_its_own_with_exactly_one_email(pipeline: Pipeline):
    notify = pipeline.app.functions["NotifyFunction"]
    sender = notify.environment["SENDER_EMAIL"]
    stuck_after = int(pipeline.app.functions["SweeperFunction"].environment["STUCK_AFTER_SECONDS"])
    ses, sqs = pipeline.stack.client("ses"), pipeline.stack.client("sqs")
    failures = sqs.get_queue_url(QueueName=pipeline.app.queue_for_arn(notify.stream_triggers[0].on_failure or "").name)
    address = "outage@example.com"

    # Given SES no longer accepts the sender (its identity was removed)
    ses.delete_identity(Identity=sender)
    try:
        # When a photo goes through
        request_id = pipeline.submit(image_bytes("PNG"), "image/png", email=address)
        # Then the request completes but no email goes out; the stream gave the batch up
        record = pipeline.status(request_id)
        assert record["status"] == "COMPLETED" and "notified_at" not in record
        assert pipeline.mail_to(address) == []
        parked = sqs.receive_message(QueueUrl=failures["QueueUrl"], MaxNumberOfMessages=10).get("Messages", [])
        assert [json.loads(m["Body"])["DDBStreamBatchInfo"]["batchSize"] for m in parked] == [1]
        for message in parked:  # looked at; the sweeper, not this queue, is what recovers it
            sqs.delete_message(QueueUrl=failures["QueueUrl"], ReceiptHandle=message["ReceiptHandle"])
    finally:
        # When SES is back
        ses.verify_email_identity(EmailAddress=sender)
    # And the request has sat unnotified past StuckAfterSeconds, then the sweeper runs (at most twice)
    pipeline.age(request_id, stuck_after + 1)
    sent_after = []
    for _ in range(2):
        pipeline.sweep()
        sent_after.append(len(pipeline.mail_to(address)))
    # Then exactly one email went out, at the first sweep, and notified_at is recorded
    assert sent_after == [1, 1]
    assert pipeline.mail_to(address)[0].subject == "Your reimagined picture is ready"
    assert "notified_at" in pipeline.status(request_id)
