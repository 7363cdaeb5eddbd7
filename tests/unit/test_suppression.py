"""SES as its users are asked to: every send through the configuration set, bounces and complaints
recorded, and the addresses they name suppressed (no more mail, 422 on new requests)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber
from pydantic import ValidationError

from reimagine import clients, mail
from reimagine.config import settings
from reimagine.handlers import api, mail_events
from reimagine.models import ErrorInfo, RequestRecord, Status
from reimagine.quota import QUOTA_PREFIX, hashing_key
from reimagine.steps.mail_events import MailEvent
from reimagine.steps.notify import notify_user
from reimagine.suppression import SUPPRESSED_PREFIX, SuppressionList, address_digest, suppression_id
from reimagine_emulator.api_events import build_event
from reimagine_tools.template import HttpRoute
from tests.fixtures.events import load_event
from tests.fixtures.lambda_context import lambda_context

BOUNCED = "no.such.user@example.com"  # the recipient in events/eventbridge_ses_bounce.json
COMPLAINED = "not.me@example.com"  # the recipient in events/eventbridge_ses_complaint.json


def _deliver(event: dict) -> dict:
    return mail_events.handler(event, lambda_context("MailEventsFunction", 30, 256))


def _suppressions() -> SuppressionList:
    return SuppressionList.from_settings(boto3.client("dynamodb"), settings())


def _items() -> list[dict]:
    return boto3.client("dynamodb").scan(TableName=settings().table_name)["Items"]


def _post(email: str) -> tuple[int, dict]:
    body = json.dumps({"email": email, "content_type": "image/png"}).encode()
    event = build_event(
        route=HttpRoute("POST", "/requests"),
        path_parameters={},
        method="POST",
        raw_path="/requests",
        headers={"content-type": "application/json"},
        body=body,
        source_ip="203.0.113.7",
    )
    response = api.handler(event, lambda_context("ApiFunction", 15, 256))
    return response["statusCode"], json.loads(response["body"])


# ---------------------------------------------------------------- SES's event format


def test_the_bounce_sample_is_ses_documented_record() -> None:
    event = MailEvent.model_validate(load_event("eventbridge_ses_bounce.json")["detail"])
    assert event.event_type == "Bounce"
    assert event.bounce is not None and event.bounce.bounce_type == "Permanent"
    assert [r.email_address for r in event.bounce.bounced_recipients] == [BOUNCED]


def test_a_detail_that_is_not_an_ses_record_fails_the_invocation(aws) -> None:
    # Lambda retries it and then parks it in the failure queue, where the alarm sees it.
    event = load_event("eventbridge_ses_bounce.json")
    del event["detail"]["bounce"]["bouncedRecipients"]
    with pytest.raises(ValidationError):
        _deliver(event)


# ---------------------------------------------------------------- recording


def test_a_permanent_bounce_suppresses_the_address_without_storing_it(aws) -> None:
    # When SES reports the sample's permanent bounce
    result = _deliver(load_event("eventbridge_ses_bounce.json"))
    # Then the address is suppressed, under a keyed hash only
    assert result == {"kind": "bounce_permanent", "recipients": 1, "suppressed": 1}
    assert _suppressions().is_suppressed(BOUNCED)
    (item,) = _items()
    digest = address_digest(BOUNCED, hashing_key(settings()))
    assert item["id"]["S"] == suppression_id(digest)
    assert item["reason"]["S"] == "bounce"
    assert "no.such.user" not in json.dumps(item)


def test_a_complaint_suppresses_the_address(aws) -> None:
    result = _deliver(load_event("eventbridge_ses_complaint.json"))
    assert result == {"kind": "complaint", "recipients": 1, "suppressed": 1}
    assert _suppressions().is_suppressed(COMPLAINED)
    (item,) = _items()
    assert item["reason"]["S"] == "complaint"


@pytest.mark.parametrize("bounce_type", ["Transient", "Undetermined"])
def test_a_bounce_that_is_not_permanent_suppresses_nothing(aws, bounce_type: str) -> None:
    # A full mailbox or greylisting says nothing lasting about the address.
    event = load_event("eventbridge_ses_bounce.json")
    event["detail"]["bounce"]["bounceType"] = bounce_type
    event["detail"]["bounce"]["bounceSubType"] = "MailboxFull" if bounce_type == "Transient" else "Undetermined"
    result = _deliver(event)
    assert result == {"kind": f"bounce_{bounce_type.lower()}", "recipients": 1, "suppressed": 0}
    assert _items() == []


def test_a_redelivered_event_changes_nothing(aws) -> None:
    event = load_event("eventbridge_ses_bounce.json")
    _deliver(event)
    before = _items()
    assert _deliver(copy.deepcopy(event))["suppressed"] == 0
    assert _items() == before


def test_a_sub_address_bounce_does_not_silence_the_mailbox(aws) -> None:
    # A domain without sub-addresses bounces `jane+x@`: that must not let anyone silence `jane@`.
    event = load_event("eventbridge_ses_bounce.json")
    event["detail"]["bounce"]["bouncedRecipients"][0]["emailAddress"] = "jane.doe+x@example.com"
    _deliver(event)
    assert _suppressions().is_suppressed("Jane.Doe+x@example.com")
    assert not _suppressions().is_suppressed("jane.doe@example.com")


def _complaint_from(address: str) -> dict:
    event = load_event("eventbridge_ses_complaint.json")
    event["detail"]["complaint"]["complainedRecipients"][0]["emailAddress"] = address
    return event


def _bounce_of(address: str) -> dict:
    event = load_event("eventbridge_ses_bounce.json")
    event["detail"]["bounce"]["bouncedRecipients"][0]["emailAddress"] = address
    return event


@pytest.mark.parametrize(
    "variant", ["jane.doe+1@gmail.com", "JaneDoe@gmail.com", "j.a.n.e.d.o.e@googlemail.com", "Jane.Doe@GMAIL.com"]
)
def test_a_complaint_suppresses_every_variant_of_the_mailbox(aws, variant: str) -> None:
    # Given a complaint from jane.doe@gmail.com
    _deliver(_complaint_from("jane.doe@gmail.com"))
    # When a variant of that inbox is checked, Then it gets no more mail either
    assert _suppressions().is_suppressed(variant)


def test_a_complaint_from_a_tagged_address_suppresses_the_mailbox(aws) -> None:
    # Given a complaint that came to a sub-address (only the mailbox's owner can complain from it)
    _deliver(_complaint_from("jane.doe+news@example.com"))
    # Then the inbox behind it is suppressed
    assert _suppressions().is_suppressed("jane.doe@example.com")


def test_a_complaint_does_not_reach_another_mailbox(aws) -> None:
    _deliver(_complaint_from("jane.doe@gmail.com"))
    assert not _suppressions().is_suppressed("jane.doe@example.com")


def test_a_gmail_bounce_suppresses_exactly_the_address_that_bounced(aws) -> None:
    # Given a permanent bounce of one spelling of a Gmail inbox
    _deliver(_bounce_of("j.ane.doe+x@gmail.com"))
    # Then that address gets no more mail, and the inbox's other spellings still do
    assert (
        _suppressions().is_suppressed("J.Ane.Doe+x@gmail.com"),
        _suppressions().is_suppressed("jane.doe@gmail.com"),
    ) == (
        True,
        False,
    )


def test_a_complaint_recorded_before_mailboxes_folded_still_suppresses_its_address(aws) -> None:
    # Given a complaint entry stored as complaints were before: keyed on the lower-cased address as written
    key = hashing_key(settings())
    legacy = hmac.new(key, b"suppressed:jane.doe+1@gmail.com", hashlib.sha256).hexdigest()
    boto3.client("dynamodb").put_item(
        TableName=settings().table_name,
        Item={"id": {"S": suppression_id(legacy)}, "reason": {"S": "complaint"}},
    )
    # Then that address is still refused (the table holds only the hash: it cannot be re-keyed)
    assert _post("Jane.Doe+1@gmail.com")[1]["error"]["code"] == "ADDRESS_SUPPRESSED"


# ---------------------------------------------------------------- what suppression does


def test_a_new_request_for_a_variant_of_a_complained_mailbox_is_refused_422(aws) -> None:
    # Given a complaint from jane.doe@gmail.com
    _deliver(_complaint_from("jane.doe@gmail.com"))
    # When a new request is made for a tagged spelling of it
    status, body = _post("jane.doe+1@gmail.com")
    # Then it is refused as suppressed
    assert (status, body["error"]["code"]) == (422, "ADDRESS_SUPPRESSED")


def test_a_suppressed_address_is_refused_422_and_nothing_is_counted(aws) -> None:
    # Given an address that bounced
    _deliver(load_event("eventbridge_ses_bounce.json"))
    # When a new request is made for it
    status, body = _post(BOUNCED.upper())
    # Then 422 with its own code, and no record, quota counter or budget was spent
    assert status == 422
    assert body["error"]["code"] == "ADDRESS_SUPPRESSED"
    assert [i["id"]["S"] for i in _items() if not i["id"]["S"].startswith(SUPPRESSED_PREFIX)] == []
    assert not [i for i in _items() if i["id"]["S"].startswith(QUOTA_PREFIX)]
    # Another address is served as before
    assert _post("jane.doe@example.com")[0] == 201


def _finished(request_id: str, email: str) -> RequestRecord:
    now = datetime.now(UTC)
    record = RequestRecord(
        id=request_id,
        status=Status.FAILED,
        email=email,
        content_type="image/png",
        error=ErrorInfo(code="NOT_AN_IMAGE", message="not an image"),
        created_at=now,
        updated_at=now,
        expires_at=int(now.timestamp()) + 3600,
    )
    clients.store().create(record)
    return record


def _sent_to() -> list[str]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    backend = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    # Raw messages name their recipients in the To header (moto lists them as `destinations`).
    return [address for message in backend.sent_messages for address in message.destinations]


def test_notify_sends_no_mail_to_an_address_suppressed_since_the_request(aws) -> None:
    # Given a finished request whose address complained after it was made
    record = _finished("3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e70", COMPLAINED)
    _deliver(load_event("eventbridge_ses_complaint.json"))
    # When Notify runs for it
    outcome = notify_user(
        record.id,
        store=clients.store(),
        s3=clients.s3(),
        ses=clients.ses(),
        settings=settings(),
        suppressions=_suppressions(),
    )
    # Then nothing is sent, and the refusal is kept on the request so nothing retries it
    assert (outcome.outcome, outcome.detail) == ("rejected", "ADDRESS_SUPPRESSED")
    assert _sent_to() == []
    stored = clients.store().get(record.id)
    assert stored is not None and stored.notify_error is not None
    assert stored.notify_error.code == "ADDRESS_SUPPRESSED"


def test_notify_still_mails_an_address_that_is_not_suppressed(aws) -> None:
    record = _finished("3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e71", "jane.doe@example.com")
    _deliver(load_event("eventbridge_ses_complaint.json"))
    outcome = notify_user(
        record.id,
        store=clients.store(),
        s3=clients.s3(),
        ses=clients.ses(),
        settings=settings(),
        suppressions=_suppressions(),
    )
    assert outcome.outcome == "done"
    assert _sent_to() == ["jane.doe@example.com"]


def test_every_email_names_the_configuration_set() -> None:
    # Given an SES client whose SendRawEmail is checked against the service model by botocore's Stubber
    ses = boto3.client("ses", region_name="us-east-1")
    message = mail.Message(subject="s", text="t", html="<p>h</p>")
    with Stubber(ses) as stub:
        stub.add_response(
            "send_raw_email",
            {"MessageId": "0100018c2a5b7e11-000000"},
            {
                "Source": "reimagine@example.com",
                "RawMessage": ANY,  # its MIME boundary is random; tests/unit/test_mail.py reads its headers
                "ConfigurationSetName": "reimagine-mail",
            },
        )
        # When a message is sent with the stack's configuration set
        message_id = mail.send(
            ses,
            sender="reimagine@example.com",
            to="jane.doe@example.com",
            message=message,
            configuration_set="reimagine-mail",
        )
        # Then SendRawEmail named it (the Stubber fails on any other parameters)
        stub.assert_no_pending_responses()
    assert message_id == "0100018c2a5b7e11-000000"


def test_notify_sends_through_the_stack_configuration_set(aws) -> None:
    # Given a finished request and Notify configured with the stack's configuration set
    record = _finished("3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e72", "jane.doe@example.com")
    configured = settings().model_copy(update={"mail_configuration_set": "reimagine-mail"})
    ses = boto3.client("ses", region_name="us-east-1")
    with Stubber(ses) as stub:
        stub.add_response(
            "send_raw_email",
            {"MessageId": "0100018c2a5b7e11-000001"},
            {
                "Source": ANY,
                "RawMessage": ANY,
                "ConfigurationSetName": "reimagine-mail",
            },
        )
        # When it notifies
        outcome = notify_user(record.id, store=clients.store(), s3=clients.s3(), ses=ses, settings=configured)
        # Then the one SendRawEmail named the set
        stub.assert_no_pending_responses()
    assert outcome.outcome == "done"
