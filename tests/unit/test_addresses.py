"""Addresses SES can deliver to: ASCII before the @, an internationalised domain as punycode.

SES does not support SMTPUTF8; its Destination type asks for 7-bit local parts and punycode domains.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import pytest

from reimagine import clients
from reimagine.handlers import api
from reimagine_local.api_events import build_event, to_http_response
from reimagine_local.outbox import SentMail, to_eml
from reimagine_local.template import HttpRoute
from tests.fixtures.lambda_context import lambda_context


def create(email: str) -> tuple[int, dict]:
    event = build_event(
        route=HttpRoute("POST", "/requests"),
        path_parameters={},
        method="POST",
        raw_path="/requests",
        headers={"content-type": "application/json"},
        body=json.dumps({"email": email, "content_type": "image/jpeg"}).encode(),
    )
    response = to_http_response(api.handler(event, lambda_context("ApiFunction", 15, 256)))
    return response.status, response.json()


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("user@bücher.de", "user@xn--bcher-kva.de"),
        ("x@xn--bcher-kva.de", "x@xn--bcher-kva.de"),  # given in punycode: never turned into Unicode
        ("x@XN--BCHER-KVA.DE", "x@xn--bcher-kva.de"),
        ("Jane.Doe@Example.COM", "Jane.Doe@example.com"),  # the local part as typed, the domain lower-case
    ],
)
def test_the_address_is_stored_as_ses_must_be_given_it(aws, given: str, stored: str) -> None:
    # Given a request made with the address
    status, created = create(given)
    # Then the record holds the domain in ASCII (punycode), lower-case
    assert (status, clients.store().get(created["id"]).email) == (201, stored)


def test_a_non_ascii_local_part_is_refused_saying_why(aws) -> None:
    # Given an address SES can never deliver to (it has no SMTPUTF8)
    status, payload = create("jösé@example.com")
    # Then it is a 422 at the email field whose message names the reason, and nothing is created
    [detail] = payload["error"]["details"]
    assert (status, detail["loc"], "ASCII" in detail["message"], "SMTPUTF8" in detail["message"]) == (
        422,
        ["body", "email"],
        True,
        True,
    )
    assert clients.dynamodb().scan(TableName=aws.table_name)["Count"] == 0


def _to_header(to: str) -> bytes:
    mail = SentMail("id-1", "reimagine@example.com", (to,), "subject", "text", "", datetime.now(UTC))
    return next(line for line in bytes(to_eml(mail)).splitlines() if line.startswith(b"To:"))


def test_the_outbox_writes_an_idn_domain_as_punycode_not_an_encoded_word() -> None:
    # An encoded word inside an address (user@=?utf-8?q?b=C3=BCcher?=.de) is what it wrote before
    assert _to_header("user@bücher.de") == b"To: user@xn--bcher-kva.de"


def test_the_outbox_writes_a_utf8_local_part_as_utf8_and_reads_it_back() -> None:
    line = _to_header("jösé@example.com")
    parsed = BytesParser(policy=policy.default).parsebytes(line + b"\n\n")
    assert (line, str(parsed["To"])) == ("To: jösé@example.com".encode(), "jösé@example.com")
