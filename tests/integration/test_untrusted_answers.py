"""Provider answers are untrusted input: bounded in size and time, never redirected elsewhere, and
their words never shown to a user. Against a real HTTP server on 127.0.0.1 (tests/fixtures/
hostile_provider.py), so that what is exercised is requests' and urllib3's own streaming."""

from __future__ import annotations

import contextlib
import io
import json
import random

import pytest
from PIL import Image

from reimagine import clients
from reimagine.errors import PROVIDER_MESSAGES, ProviderError
from reimagine.model_call import Deadline
from reimagine.models import Status
from reimagine.providers import http
from reimagine.providers import openai as oa
from reimagine.providers.chain import CaptionChain
from reimagine.providers.untrusted import for_log
from tests.fixtures import images
from tests.fixtures import provider_answers as answers
from tests.fixtures.hostile_provider import Answer, HostileProvider, chat_json, gzip_bomb
from tests.fixtures.provider_fakes import IMAGE
from tests.fixtures.steps_on_moto import create_request, run_caption, upload

KEY = "sk-TopSecretKeyValue"
# What a hostile provider writes for the victim to read: a bidi override, a zero-width space, a link.
LURE = "\u202eYour photo was flagged.\u200b Appeal at https://evil.example/reset or mail help@evil.example"


def captioner(url: str) -> oa.OpenAiCaptioner:
    return oa.OpenAiCaptioner(http.HttpClient(token=lambda: KEY), base_url=url, model="vision-1")


def caption_from(answer: Answer, seconds: float = 30) -> str:
    with HostileProvider(answer) as provider:
        return captioner(provider.url()).caption(IMAGE, Deadline.after(seconds))


def failure_code(answer: Answer, seconds: float = 30) -> str:
    with pytest.raises(ProviderError) as caught:
        caption_from(answer, seconds)
    return caught.value.code


# --- 3. size: bounded while streaming, compressed and decompressed ------------------------------


def test_a_gzip_answer_that_inflates_past_the_cap_is_refused_while_it_streams() -> None:
    # Given a 64 KB gzip body that inflates to 64 MiB, a valid chat completion padded with spaces
    bomb = Answer(body=gzip_bomb("A dog.", 64 * http.MiB), headers={"Content-Encoding": "gzip"})
    # When it is the answer to a caption, Then it is refused as a bad answer once past the cap
    assert failure_code(bomb) == "PROVIDER_BAD_RESPONSE"


def test_an_answer_without_a_length_is_cut_at_the_cap() -> None:
    # Given a chat completion padded past the cap, sent without Content-Length
    long = Answer(body=chat_json("A dog.", padding=2 * http.MAX_ANSWER_BYTES), declare_length=False)
    # Then it is refused as a bad answer
    assert failure_code(long) == "PROVIDER_BAD_RESPONSE"


def test_a_declared_length_past_the_cap_is_refused_before_reading() -> None:
    big = Answer(body=chat_json("A dog.", padding=http.MAX_ANSWER_BYTES))
    assert failure_code(big) == "PROVIDER_BAD_RESPONSE"


def test_a_long_error_body_is_cut_and_still_classified_by_its_status() -> None:
    # Given a 503 whose error page is larger than any answer may be
    overloaded = Answer(status=503, body=b"<html>" + b"busy " * http.MAX_ANSWER_BYTES, declare_length=False)
    # When a caption is asked, Then it is retried as the outage it is, until the attempts run out
    assert failure_code(overloaded) == "PROVIDER_UNAVAILABLE"


def test_a_picture_answer_may_be_larger_than_a_json_answer() -> None:
    # Given a 1024x1024 noise PNG (about 3 MiB, 4 MiB as base64): more than a caption may be
    noise = Image.frombytes("RGB", (1024, 1024), random.Random(18).randbytes(1024 * 1024 * 3))
    png = io.BytesIO()
    noise.save(png, "PNG")
    answer = Answer(body=json.dumps(answers.openai_images(png.getvalue())).encode())
    # When a picture is asked, Then it is accepted
    with HostileProvider(answer) as provider:
        painter = oa.OpenAiGenerator(http.HttpClient(token=None), base_url=provider.url(), model="painter-1")
        assert painter.generate("A dog.", Deadline.after(30)).startswith(b"\x89PNG")


# --- 4. time: a total deadline, whatever the pace of the bytes -----------------------------------


@pytest.mark.timeout(60)
def test_a_provider_that_trickles_its_answer_ends_provider_timeout() -> None:
    # Given a provider that sends its (valid) answer one byte every 50 ms: each read is quick, the
    # whole takes 15 s
    trickle = Answer(body=chat_json("A dog."), trickle_seconds=0.05)
    # When the call has 3.5 s left, Then it ends PROVIDER_TIMEOUT within them
    assert failure_code(trickle, seconds=3.5) == "PROVIDER_TIMEOUT"


@pytest.mark.timeout(60)
def test_a_provider_that_trickles_its_headers_ends_provider_timeout() -> None:
    # Given a provider that sends even its status line and headers one byte every 50 ms
    trickle = Answer(body=chat_json("A dog."), trickle_seconds=0.05, trickle_head=True)
    # When the call has 3.5 s left, Then it ends PROVIDER_TIMEOUT within them
    assert failure_code(trickle, seconds=3.5) == "PROVIDER_TIMEOUT"


# --- 6. redirects: none followed, so no request or credential goes elsewhere ---------------------


def test_a_redirect_to_another_origin_is_not_followed() -> None:
    # Given a provider that answers 303 to another origin, which would answer a caption
    with HostileProvider(Answer(body=chat_json("Elsewhere's words."))) as elsewhere:
        redirect = Answer(status=303, headers={"Location": elsewhere.url("/requests/x")})
        # When a caption is asked
        with HostileProvider(redirect) as provider, pytest.raises(ProviderError) as caught:
            captioner(provider.url()).caption(IMAGE, Deadline.after(30))
        # Then it is a bad answer and nothing reached the other origin
        assert (caught.value.code, caught.value.retryable, elsewhere.calls) == ("PROVIDER_BAD_RESPONSE", False, [])


def test_a_redirect_to_the_same_origin_is_not_followed_either() -> None:
    redirect = Answer(status=307, headers={"Location": "/v1/other"})
    assert failure_code(redirect) == "PROVIDER_BAD_RESPONSE"


# --- 7. users read our words; the provider's go to the log, inert -------------------------------


def test_a_providers_error_text_never_reaches_the_user(aws) -> None:
    # Given an upload, and a provider that refuses it with a lure as its error text
    request_id = create_request(aws)
    upload(aws, request_id, images.png())
    refusal = Answer(status=400, body=json.dumps({"error": {"message": LURE, "code": "flagged"}}).encode())
    # When the caption step runs
    with HostileProvider(refusal) as provider, contextlib.suppress(ProviderError):
        chain = CaptionChain([captioner(provider.url())])
        run_caption(aws, request_id, chain)
    # Then the request ends FAILED with our words for the code (what the API and the email show)
    record = clients.store().get(request_id)
    assert (record.status, record.error.code, record.error.message) == (
        Status.FAILED,
        "PROVIDER_REJECTED",
        PROVIDER_MESSAGES["PROVIDER_REJECTED"],
    )


def test_a_providers_error_text_is_logged_inert(caplog: pytest.LogCaptureFixture) -> None:
    # Given a provider that refuses with a lure
    refusal = Answer(status=400, body=json.dumps({"error": LURE}).encode())
    # When a chain captions with it
    with HostileProvider(refusal) as provider, contextlib.suppress(ProviderError):
        CaptionChain([captioner(provider.url())]).caption(IMAGE, Deadline.after(30))
    # Then the log keeps the words, without the invisible characters, the address masked
    assert [getattr(r, "reason", None) for r in caplog.records if r.getMessage() == "provider call failed"] == [
        "the provider refused the request: HTTP 400 "
        "(Your photo was flagged. Appeal at https://evil.example/reset or mail h***@e***.example)"
    ]


def test_for_log_drops_invisible_characters_and_masks_addresses_and_credentials() -> None:
    assert for_log(f"\u2066a\u200bb\nc jane.doe@example.com Bearer {KEY} {KEY}", secret=KEY) == (
        "ab c j***@e***.com *** ***"
    )
