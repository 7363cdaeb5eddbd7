"""The notify step, on moto: claimed before sending, recorded after; SES failures retried or recorded."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from reimagine import clients, mail
from reimagine.handlers import notify, streams
from reimagine.models import RequestRecord, Status, new_request_id, utcnow
from reimagine.records import RequestStore
from reimagine.steps import notify as notify_steps
from reimagine.steps.notify import notify_user
from tests.fixtures.events import load_event
from tests.fixtures.lambda_context import lambda_context

SENDER = "reimagine@example.com"


def _finished(status: Status = Status.COMPLETED, email: str = "jane@example.com") -> str:
    now = utcnow()
    record = RequestRecord(
        id=new_request_id(),
        status=status,
        email=email,
        content_type="image/png",
        caption="A red rectangle.",
        caption_provider="offline",
        result_key=None,
        created_at=now,
        updated_at=now,
        expires_at=int((now + timedelta(days=30)).timestamp()),
    )
    if status is Status.COMPLETED:
        record.result_key = f"results/{record.id}.png"
    clients.store().create(record)
    return record.id


def _notify(settings, request_id: str, *, store: RequestStore | None = None, ses: Any = None):
    return notify_user(
        request_id,
        store=store or clients.store(),
        s3=clients.s3(),
        ses=ses or clients.ses(),
        settings=settings,
    )


def _sent() -> int:
    return int(boto3.client("ses").get_send_quota()["SentLast24Hours"])


def _ses_error(code: str, message: str, status: int = 400) -> ClientError:
    """An SES error as botocore raises it (SES's query protocol: Error.Code, Error.Message)."""
    return ClientError(
        {"Error": {"Type": "Sender", "Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "SendEmail",
    )


class FailingSes:
    """SES that raises the given errors, one per call, then sends for real through moto."""

    def __init__(self, *errors: ClientError) -> None:
        self.errors = list(errors)
        self.real = clients.ses()

    def send_raw_email(self, **kwargs: Any) -> Any:
        if self.errors:
            raise self.errors.pop(0)
        return self.real.send_raw_email(**kwargs)


# ---------------------------------------------------------------- one email, however it is delivered


def test_two_concurrent_deliveries_send_one_email(aws):
    # Given a finished request, and a second delivery of its stream record arriving while the first
    # is inside SES's SendRawEmail
    request_id = _finished()
    second: list[str] = []

    class SesDuringWhichTheOtherDeliveryRuns:
        def send_raw_email(self, **kwargs: Any) -> Any:
            worker = threading.Thread(target=lambda: second.append(_notify(aws, request_id).outcome))
            worker.start()
            worker.join()
            return clients.ses().send_raw_email(**kwargs)

    # When both run
    first = _notify(aws, request_id, ses=SesDuringWhichTheOtherDeliveryRuns())
    # Then the one that claimed first sends, and the other finds the claim held and sends nothing
    assert (first.outcome, second) == ("done", ["skipped"])
    assert _sent() == 1


def test_a_failed_mark_notified_retried_does_not_send_again(aws):
    # Given DynamoDB throttles the write of notified_at once, after SES took the email
    request_id = _finished()

    class ThrottledOnce(RequestStore):
        failures = 1

        def mark_notified(self, request_id: str) -> RequestRecord | None:
            if self.failures:
                self.failures -= 1
                raise ClientError(
                    {"Error": {"Code": "ThrottlingException", "Message": "Rate of requests exceeds the allowed"}},
                    "UpdateItem",
                )
            return super().mark_notified(request_id)

    store = ThrottledOnce(clients.dynamodb(), aws.table_name)
    with pytest.raises(ClientError):
        _notify(aws, request_id, store=store)
    # When the stream retries the record
    outcome = _notify(aws, request_id, store=store)
    # Then notified_at is recorded and the email was sent once
    record = clients.store().get(request_id)
    assert outcome.outcome == "done"
    assert record is not None and record.notified_at is not None and record.notify_claimed_until is None
    assert _sent() == 1


def test_a_notified_request_is_not_sent_again(aws):
    request_id = _finished(Status.FAILED)
    assert _notify(aws, request_id).outcome == "done"
    assert _notify(aws, request_id).outcome == "skipped"
    assert _sent() == 1


# ---------------------------------------------------------------- SES refusing


def test_a_removed_sender_identity_gives_the_claim_back_and_the_retry_sends_once_it_is_back(aws):
    # Given SES no longer knows the sender identity
    request_id = _finished()
    ses = boto3.client("ses")
    ses.delete_identity(Identity=SENDER)
    # When notify runs, it fails so the stream retries, and the claim is given back
    with pytest.raises(ClientError):
        _notify(aws, request_id)
    record = clients.store().get(request_id)
    assert record is not None and record.notified_at is None and record.notify_error is None
    assert record.notify_claimed_until == 0
    # And once the operator verifies it again, the retry sends the one email
    ses.verify_email_identity(EmailAddress=SENDER)
    assert _notify(aws, request_id).outcome == "done"
    assert _sent() == 1


@pytest.mark.parametrize(
    "error",
    [
        _ses_error("Throttling", "Maximum sending rate exceeded."),
        _ses_error("ServiceUnavailable", "Service is unable to handle request.", 503),
        _ses_error("InternalFailure", "An internal error occurred.", 500),
    ],
)
def test_a_transient_ses_error_is_retried_and_the_retry_sends(aws, error):
    request_id = _finished()
    ses = FailingSes(error)
    with pytest.raises(ClientError):
        _notify(aws, request_id, ses=ses)
    assert _notify(aws, request_id, ses=ses).outcome == "done"
    assert _sent() == 1


def test_a_permanent_rejection_is_recorded_masked_and_never_retried(aws):
    # Given SES refuses the recipient (here: a sandbox account, recipient not verified)
    request_id = _finished(email="jane@example.com")
    refusal = _ses_error(
        "MessageRejected",
        "Email address is not verified. The following identities failed the check in region US-EAST-1: "
        "jane@example.com",
    )
    # When notify runs
    outcome = _notify(aws, request_id, ses=FailingSes(refusal))
    # Then the refusal is recorded on the request, without the address in clear, and counted
    record = clients.store().get(request_id)
    assert (outcome.outcome, outcome.detail) == ("rejected", "MessageRejected")
    assert record is not None and record.notify_error is not None and record.notify_claimed_until is None
    assert record.notify_error.code == "MessageRejected"
    assert record.notify_error.message.endswith("US-EAST-1: j***@e***.com")
    # And a later delivery does not try again
    assert _notify(aws, request_id).outcome == "skipped"
    assert _sent() == 0


@pytest.mark.parametrize(
    ("code", "message", "status", "permanent"),
    [
        ("MessageRejected", "Address blacklisted.", 400, True),
        ("InvalidParameterValue", "Missing final '@domain'", 400, True),
        # What SES says when the sender identity is missing or unverified: an operator can fix that.
        (
            "MessageRejected",
            "Email address is not verified. The following identities failed the check in region "
            "US-EAST-1: reimagine@example.com",
            400,
            False,
        ),
        ("MessageRejected", "Email address not verified reimagine@example.com", 400, False),  # moto, LocalStack
        ("Throttling", "Maximum sending rate exceeded.", 400, False),
        ("MailFromDomainNotVerifiedException", "MAIL FROM domain not verified", 400, False),
        ("AccountSendingPausedException", "Sending is paused for this account.", 400, False),
        ("AccessDenied", "User is not authorized to perform ses:SendEmail", 403, False),
        ("ServiceUnavailable", "Service unavailable", 503, False),
    ],
)
def test_ses_errors_are_permanent_only_when_the_message_itself_is_refused(code, message, status, permanent):
    failure = mail.send_failure(_ses_error(code, message, status), sender=SENDER)
    assert failure.permanent is permanent


# ---------------------------------------------------------------- through the handler


def _stream_event(request_id: str) -> dict:
    event = load_event("dynamodb_stream_completed.json")
    for record in event["Records"]:
        record["dynamodb"]["Keys"]["id"]["S"] = request_id
        record["dynamodb"]["NewImage"]["id"]["S"] = request_id
    return event


def test_a_permanent_rejection_is_counted_and_the_record_is_not_retried(aws, monkeypatch):
    # Given SES refuses this recipient for good
    request_id = _finished()
    refusing = FailingSes(_ses_error("MessageRejected", "Address blacklisted."))
    monkeypatch.setattr(clients, "ses", lambda: refusing)
    counted: list[str] = []
    monkeypatch.setattr(streams.metrics, "add_metric", lambda name, **_: counted.append(name))
    # When Notify handles the stream record
    response = notify.handler(_stream_event(request_id), lambda_context("NotifyFunction", 30, 256))
    # Then it is counted as a rejection and reported as handled (the stream does not retry it)
    assert counted == ["Notify_rejected"]
    assert response == {"batchItemFailures": []}


def test_a_transient_ses_error_makes_the_stream_retry_the_record(aws, monkeypatch):
    request_id = _finished()
    throttled = FailingSes(_ses_error("Throttling", "Maximum sending rate exceeded."))
    monkeypatch.setattr(clients, "ses", lambda: throttled)
    event = _stream_event(request_id)

    response = notify.handler(event, lambda_context("NotifyFunction", 30, 256))

    sequence = event["Records"][0]["dynamodb"]["SequenceNumber"]
    assert response == {"batchItemFailures": [{"itemIdentifier": sequence}]}
    record = clients.store().get(request_id)
    assert record is not None and record.notify_claimed_until == 0  # given back for the retry


def test_a_sent_email_records_how_long_the_user_waited(aws, monkeypatch):
    # Given a request created two minutes ago that has just completed
    request_id = _finished()
    created = clients.store().get(request_id)
    assert created is not None
    monkeypatch.setattr(notify_steps, "utcnow", lambda: created.created_at + timedelta(seconds=120))
    timed: list[tuple[str, float]] = []
    monkeypatch.setattr(notify_steps.metrics, "add_metric", lambda name, value, **_: timed.append((name, value)))
    # When its email is sent
    _notify(aws, request_id)
    # Then the time from request to email is published for the dashboard's percentiles
    assert timed == [("EndToEndSeconds", 120.0)]
