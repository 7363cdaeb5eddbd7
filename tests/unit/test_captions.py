"""Captions are cleaned once, where they are stored: invisible text is not a caption."""

from __future__ import annotations

import contextlib

import pytest

from reimagine import clients
from reimagine.caption_text import MAX_CAPTION_CHARS, clean_caption
from reimagine.errors import ProviderError
from reimagine.model_call import Deadline, ModelInput
from reimagine.models import Status
from reimagine.request_body import CreateRequestBody
from reimagine.steps import api as api_steps
from reimagine.steps.caption import caption_upload
from tests.fixtures import images

INVISIBLE = "\u200b\u200b\u2060\ufeff\u200e\u202e"  # zero-width space, word joiner, BOM, bidi marks


@pytest.mark.parametrize("text", [INVISIBLE, " \n\t ", "", "\u200b \u200b"])
def test_a_caption_with_no_visible_text_is_a_bad_response(text: str) -> None:
    with pytest.raises(ProviderError) as caught:
        clean_caption(text)
    assert caught.value.code == "PROVIDER_BAD_RESPONSE"


def test_a_caption_that_is_not_text_is_a_bad_response() -> None:
    with pytest.raises(ProviderError) as caught:
        clean_caption(["A dog."])
    assert caught.value.code == "PROVIDER_BAD_RESPONSE"


def test_format_characters_are_removed_and_controls_separate_words() -> None:
    assert clean_caption("A\u200b red\u202e\nbarn,\tat\u2060 dusk.") == "A red barn, at dusk."


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("URGENT: account locked, visit https://evil.example/reset now.", "URGENT: account locked, visit now."),
        ("A sign reading mail jane.doe@evil.example for prizes.", "A sign reading mail for prizes."),
        ("A poster for evil.example/login and www.bad.test in red.", "A poster for and in red."),
        (
            "A banner: \u0435vil\uff0eexample, xn--e1afmkfd.xn--p1ai, "
            "\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444.",
            "A banner: , , .",
        ),
        ("A note saying ht\u200btps://evil.example/x.", "A note saying"),
    ],
)
def test_links_are_removed_from_a_caption(text: str, cleaned: str) -> None:
    # Given a caption that carries a URL, an email address or a domain name (any script, any dot)
    # When it is cleaned
    # Then what a mail client would turn into a link is gone, the description stays
    assert clean_caption(text) == cleaned


def test_abbreviations_and_numbers_are_not_links() -> None:
    text = "A retriever, e.g. a golden one, 3.5 m from St. Louis arch; Mr. Smith waves."
    assert clean_caption(text) == text


def test_a_caption_that_is_only_a_link_is_a_bad_response() -> None:
    with pytest.raises(ProviderError) as caught:
        clean_caption("https://evil.example/reset")
    assert caught.value.code == "PROVIDER_BAD_RESPONSE"


def test_a_long_caption_is_capped() -> None:
    assert len(clean_caption("word " * 200)) <= MAX_CAPTION_CHARS


class InvisibleCaptioner:
    name = "fake"
    model = "fake-vision-1"

    def caption(self, image: ModelInput, deadline: Deadline) -> str:
        return INVISIBLE


def test_an_invisible_caption_is_never_stored(aws) -> None:
    # Given an upload and a model that answers only zero-width characters
    body = CreateRequestBody(email="jane@example.com", content_type="image/png")
    request_id = api_steps.create_request(body, store=clients.store(), s3=clients.s3(), settings=aws).id
    clients.s3().put_object(Bucket=aws.uploads_bucket, Key=f"uploads/{request_id}", Body=images.png())
    # When the caption step runs on every attempt the event source makes
    for _ in range(aws.max_attempts):
        with contextlib.suppress(ProviderError):  # retryable: given back to the event source
            caption_upload(
                request_id,
                store=clients.store(),
                s3=clients.s3(),
                settings=aws,
                captioner=InvisibleCaptioner,
                deadline=Deadline.after(30),
            )
    # Then the request ends FAILED with PROVIDER_BAD_RESPONSE and no caption
    record = clients.store().get(request_id)
    assert (record.status, record.error.code, record.caption) == (Status.FAILED, "PROVIDER_BAD_RESPONSE", None)
