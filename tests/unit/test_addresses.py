"""Addresses SES can deliver to: ASCII before the @, an internationalised domain as punycode.

SES does not support SMTPUTF8; its Destination type asks for 7-bit local parts and punycode domains.
And the canonical mailbox: the one key under which every variant of an inbox is counted and refused.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reimagine import clients
from reimagine.addresses import GMAIL_DOMAINS, canonical_mailbox
from reimagine.handlers import api
from reimagine_emulator.api_events import build_event, to_http_response
from reimagine_emulator.outbox import SentMail, to_eml
from reimagine_tools.template import HttpRoute
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


# RFC 5321 4.5.3.1: at most 64 octets before the @, 254 in the whole address (a 256-octet path less <>).
DOMAIN_189 = f"{'b' * 63}.{'c' * 63}.{'d' * 57}.com"


@pytest.mark.parametrize("local_length", [65, 100, 200])
def test_a_local_part_over_64_characters_is_refused_at_the_email_field(aws, local_length: int) -> None:
    # Given an address whose part before the @ is longer than SMTP allows (65-200 were accepted before)
    status, payload = create(f"{'a' * local_length}@example.com")
    # Then it is a 422 at the email field, and nothing is created
    [detail] = payload["error"]["details"]
    assert (status, detail["loc"], clients.dynamodb().scan(TableName=aws.table_name)["Count"]) == (
        422,
        ["body", "email"],
        0,
    )


@pytest.mark.parametrize(
    "address",
    [
        f"{'a' * 65}@{DOMAIN_189}",  # 255 as typed
        f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'ü' * 20}.{'d' * 33}.de",  # 250 as typed, 256 as punycode
    ],
    ids=["typed", "as-punycode"],
)
def test_an_address_over_254_characters_is_refused(aws, address: str) -> None:
    status, payload = create(address)
    assert (status, payload["error"]["details"][0]["loc"]) == (422, ["body", "email"])


def test_an_address_at_both_limits_is_accepted(aws) -> None:
    # Given 64 characters before the @ and 254 in all
    address = f"{'a' * 64}@{DOMAIN_189}"
    assert len(address) == 254
    # Then it is created as given
    status, created = create(address)
    assert (status, clients.store().get(created["id"]).email) == (201, address)


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


# ---------------------------------------------------------------- the canonical mailbox

PROPERTIES = settings(max_examples=200, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# What may follow a `+` in a tag: RFC 5322 atext, `+` included.
TAGS = st.text(alphabet=st.sampled_from("abcXYZ019!#$%&'*+-/=?^_`{|}~."), max_size=20)


@pytest.mark.parametrize(
    ("variant", "mailbox"),
    [
        ("jane.doe@example.com", "jane.doe@example.com"),
        ("Jane.Doe@Example.COM", "jane.doe@example.com"),  # case folds
        (" jane.doe@example.com ", "jane.doe@example.com"),
        ("jane.doe+photos@example.com", "jane.doe@example.com"),  # a sub-address folds
        ("jane.doe+a+b@example.com", "jane.doe@example.com"),  # from the first +
        ("+tagonly@example.com", "+tagonly@example.com"),  # nothing before the + to fold to
        ("v.ictimx@gmail.com", "victimx@gmail.com"),  # Gmail ignores dots
        ("vi.ctimx@gmail.com", "victimx@gmail.com"),
        ("V.I.C.T.I.M.X+spam@GoogleMail.com", "victimx@gmail.com"),  # googlemail is gmail
        ("victimx@googlemail.com", "victimx@gmail.com"),
        ("v.ictimx@mail.gmail.com", "v.ictimx@mail.gmail.com"),  # only those two domains
        ("v.ictimx@example.com", "v.ictimx@example.com"),  # elsewhere a dot is part of the name
        ("jane-news@example.com", "jane-news@example.com"),  # no other sub-address syntax is guessed
        ("user@xn--bcher-kva.de", "user@xn--bcher-kva.de"),
    ],
)
def test_every_variant_of_an_inbox_has_one_canonical_mailbox(variant: str, mailbox: str) -> None:
    assert canonical_mailbox(variant) == mailbox


@PROPERTIES
@given(st.emails())
def test_the_canonical_mailbox_is_its_own_canonical_mailbox(address: str) -> None:
    assert canonical_mailbox(canonical_mailbox(address)) == canonical_mailbox(address)


@PROPERTIES
@given(st.emails(), TAGS)
def test_a_tag_never_makes_a_new_mailbox(address: str, tag: str) -> None:
    local, _, domain = address.rpartition("@")
    assume(not local.startswith("+"))
    assert canonical_mailbox(f"{local}+{tag}@{domain}") == canonical_mailbox(address)


@PROPERTIES
@given(st.emails())
def test_letter_case_never_makes_a_new_mailbox(address: str) -> None:
    assert canonical_mailbox(address.swapcase()) == canonical_mailbox(address)


@PROPERTIES
@given(st.emails())
def test_outside_gmail_the_domain_and_the_dots_are_kept(address: str) -> None:
    local, _, domain = address.lower().rpartition("@")
    assume(domain not in GMAIL_DOMAINS)
    folded_local, _, folded_domain = canonical_mailbox(address).rpartition("@")
    # Then the domain is untouched, and the local part is all of it or what comes before a tag, dots and all
    assert (folded_domain, local == folded_local or local.startswith(f"{folded_local}+")) == (domain, True)


@PROPERTIES
@given(st.from_regex(r"[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){0,3}", fullmatch=True), st.sampled_from(sorted(GMAIL_DOMAINS)))
def test_at_gmail_dots_and_the_googlemail_name_never_make_a_new_mailbox(local: str, domain: str) -> None:
    assert canonical_mailbox(f"{local}@{domain}") == f"{local.replace('.', '')}@gmail.com"
