"""Only people who asked get mail, and one click stops it: the template's defaults (ConfirmAddresses=true)
end to end on the local stack, each function in its own execution environments.

The tests of this module run in order on one stack and tell one story: a new mailbox's first photo
waits and its address gets one confirmation mail; a second photo for another spelling of the same
mailbox sends none; opening the link (GET) confirms nothing; pressing its button (POST) confirms, and
both photos complete with one result mail each, carrying one-click unsubscribe; the link cannot be
used twice; a one-click POST to the unsubscribe URL suppresses the mailbox.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from urllib.parse import urlsplit

import pytest

from tests.fixtures import images
from tests.integration.conftest import FORM, Pipeline, PipelineConfig, confirmation_link

pytestmark = pytest.mark.integration

FIRST = "Jane.Doe+photos@gmail.com"
SECOND = "janedoe@googlemail.com"  # the same Gmail mailbox: case, +tag, dots and googlemail fold
WAITING = "AWAITING_CONFIRMATION"


@pytest.fixture(scope="module")
def pipeline_config() -> PipelineConfig:
    return PipelineConfig(parameters={"ConfirmAddresses": "true"})


@pytest.fixture(scope="module")
def story() -> dict:
    """What one test leaves for the next (request ids)."""
    return {}


def _upload(pipeline: Pipeline, address: str) -> str:
    data = images.jpeg((96, 64))
    created = pipeline.create(address, "image/jpeg", len(data))
    assert pipeline.upload(created, data).status_code == 204
    pipeline.stack.drain()
    return created["id"]


def _headers(path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def test_a_new_mailbox_waits_and_gets_exactly_one_generic_confirmation_mail(pipeline: Pipeline, story: dict) -> None:
    # Given a mailbox that never confirmed
    # When its first photo is uploaded
    story["first"] = _upload(pipeline, FIRST)
    # Then the request waits, with nothing spent on it (no caption)
    view = pipeline.status(story["first"])
    assert (view["status"], view.get("caption")) == (WAITING, None)
    # And the address got one mail, the confirmation: generic, nothing of the request in it
    (sent,) = [m for m in pipeline.outbox.glob("*.eml") if _headers(m)["To"] == FIRST]
    message = _headers(sent)
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert message["Subject"] == "Confirm your address for reimagine"
    assert "/confirm/" in text and "ignore this email" in text
    assert story["first"] not in text and "Caption" not in text


def test_another_spelling_of_the_mailbox_inside_the_cooldown_waits_and_sends_nothing(
    pipeline: Pipeline, story: dict
) -> None:
    story["second"] = _upload(pipeline, SECOND)
    assert pipeline.status(story["second"])["status"] == WAITING
    assert pipeline.confirmation_mails(SECOND) == []
    assert len(pipeline.confirmation_mails(FIRST)) == 1


def test_opening_the_link_shows_a_button_and_confirms_nothing(pipeline: Pipeline, story: dict) -> None:
    # When a mail scanner (or the reader) fetches the link with GET
    response = pipeline.confirm(FIRST, method="GET")
    # Then it sees a page whose one button POSTs, and both requests still wait
    assert response.status == 200
    assert re.search(rb'<form method="post">.*<button', response.body)
    assert [pipeline.status(story[k])["status"] for k in ("first", "second")] == [WAITING, WAITING]


def test_pressing_the_button_completes_both_photos_with_one_result_mail_each(pipeline: Pipeline, story: dict) -> None:
    # When the reader presses the button
    response = pipeline.confirm(FIRST)
    # Then the address is confirmed and both waiting requests complete
    assert response.status == 200 and b"Address confirmed" in response.body
    assert [pipeline.status(story[k])["status"] for k in ("first", "second")] == ["COMPLETED", "COMPLETED"]
    # With one result mail each, carrying one-click unsubscribe (RFC 8058) on the raw message
    results = {address: pipeline.mail_to(address) for address in (FIRST, SECOND)}
    assert {address: len(mails) for address, mails in results.items()} == {FIRST: 1, SECOND: 1}
    for (mail,) in results.values():
        headers = _headers(mail.file)
        assert re.fullmatch(
            r"<http://127\.0\.0\.1:\d+/unsubscribe/[0-9a-f]{64}\.[0-9a-f]{32}>", headers["List-Unsubscribe"]
        )
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # And so does the confirmation mail
    assert _headers(pipeline.confirmation_mails(FIRST)[0].file)["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_the_link_cannot_be_used_twice(pipeline: Pipeline) -> None:
    response = pipeline.confirm(FIRST)
    assert response.status == 410 and b"already used" in response.body


def test_an_unknown_link_is_refused_with_a_page_that_says_so(pipeline: Pipeline) -> None:
    response = pipeline.stack.api_invoke("POST", "/confirm/not-a-token-we-issued", headers=FORM)
    assert response.status == 404 and b"not valid" in response.body


def test_a_confirmed_mailbox_goes_straight_through(pipeline: Pipeline) -> None:
    request_id = _upload(pipeline, "jane.doe@gmail.com")
    assert pipeline.status(request_id)["status"] == "COMPLETED"
    assert len(pipeline.confirmation_mails("jane.doe@gmail.com")) == 0


def test_a_one_click_post_to_the_unsubscribe_url_suppresses_the_mailbox(pipeline: Pipeline) -> None:
    # Given the List-Unsubscribe URL of a result mail
    (mail,) = pipeline.mail_to(SECOND)
    url = _headers(mail.file)["List-Unsubscribe"].strip("<>")
    # When a mail client POSTs it as RFC 8058 says
    response = pipeline.stack.api_invoke("POST", urlsplit(url).path, "List-Unsubscribe=One-Click", FORM)
    # Then the mailbox is suppressed: a new request for any spelling of it is refused
    assert response.status == 200
    refused = pipeline.stack.api_invoke("POST", "/requests", {"email": FIRST, "content_type": "image/png"})
    assert (refused.status, refused.json()["error"]["code"]) == (422, "ADDRESS_SUPPRESSED")


def test_a_junk_upload_for_an_unconfirmed_address_ends_without_any_mail(pipeline: Pipeline) -> None:
    # Given an address that never confirmed, and an upload that is not a picture
    created = pipeline.create("stranger@example.net", "image/png")
    assert pipeline.upload(created, b"not a picture at all").status_code == 204
    pipeline.stack.drain()
    # Then the request fails where it is validated, and the address gets nothing: no failure mail
    assert pipeline.status(created["id"])["status"] == "FAILED"
    assert [m for m in pipeline.outbox.glob("*.eml") if _headers(m)["To"] == "stranger@example.net"] == []


def test_no_log_line_carries_an_address_a_token_or_a_link(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    # Given a whole confirmation run logged
    address = "quentin.okafor@example.org"
    request_id = pipeline.submit(images.jpeg((96, 64)), "image/jpeg", email=address)
    assert pipeline.status(request_id)["status"] == "COMPLETED"
    link = confirmation_link(pipeline.confirmation_mails(address)[0].file)
    token = urlsplit(link).path.rsplit("/", 1)[1]
    unsubscribe = _headers(pipeline.mail_to(address)[0].file)["List-Unsubscribe"].strip("<>")
    out, err = capfd.readouterr()
    logged = "\n".join([out, err, *(f"{r.getMessage()} {vars(r)}" for r in caplog.records)])
    # Then none of them appears in any line
    assert "AddressConfirmed" in logged or "address confirmed" in logged  # the capture holds the API's lines
    for secret in (address, "quentin.okafor", token, urlsplit(unsubscribe).path.rsplit("/", 1)[1]):
        assert secret not in logged


def test_a_request_never_confirmed_ends_with_the_upload_and_sends_nothing_more(pipeline: Pipeline) -> None:
    # Given a request that has waited for its address's confirmation longer than the upload is kept
    address = "late.reader@example.net"
    request_id = _upload(pipeline, address)
    assert pipeline.status(request_id)["status"] == WAITING
    pipeline.age(request_id, 86400 + 60)
    # When the sweeper runs
    pipeline.sweep()
    # Then the request has ended, and the address got nothing but its one confirmation mail
    view = pipeline.status(request_id)
    assert (view["status"], view["error"]["code"]) == ("FAILED", "CONFIRMATION_EXPIRED")
    assert [_headers(m)["Subject"] for m in pipeline.outbox.glob("*.eml") if _headers(m)["To"] == address] == [
        "Confirm your address for reimagine"
    ]
