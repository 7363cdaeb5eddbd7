"""Plain words (issue 21, item 4): every message a person can meet, per error code, is ours.

Walks the codes a person reads (the API's refusals, a failed request's reason, as the page, the
CLI and the email show them) and asserts none carries an exception name, pydantic's phrasing or
another Python-ism, and that the ones with a limit or a wait say it.
"""

from __future__ import annotations

import re

import pytest

from reimagine import clients, imaging, storage
from reimagine.container_walk import MAX_JPEG_SEGMENTS, MAX_PNG_CHUNKS
from reimagine.errors import PROVIDER_MESSAGES, InvalidImage
from reimagine.models import Status
from reimagine.quota import DailyBudgetExhausted, IpQuotaExceeded, QuotaExceeded
from reimagine.steps import sweeper
from reimagine.steps.claims import INTERNAL_MESSAGE
from tests.fixtures import images
from tests.fixtures.api_calls import call, finished_request

# What a person must never read: exception and type names, pydantic's and Python's phrasing, internals.
PYTHONISMS = re.compile(
    r"\b\w*(Error|Exception|Warning)\b|Value error|Input should|Extra inputs|Field required|pydantic"
    r"|Traceback|\bNone\b|\bTrue\b|\bFalse\b|\bdict\b|\bstr\b|\bint\b|__\w+__|\(\w+Error\)|errno|zlib",
)


def _rejection(data: bytes, max_pixels: int = 64_000_000) -> InvalidImage:
    with pytest.raises(InvalidImage) as caught:
        imaging.prepare_for_model(data, max_pixels=max_pixels)
    return caught.value


UPLOADS = {
    "truncated JPEG": lambda: images.truncated_jpeg(),
    "truncated PNG": lambda: images.truncated_png(),
    "decompression bomb": lambda: images.bomb_png(),
    "BMP": lambda: images.bmp(),
    "text named .jpg": lambda: b"hello, this is a text file",
    "empty": lambda: b"",
    "JPEG segment flood": lambda: images.jpeg_with_segments(MAX_JPEG_SEGMENTS + 1),
    "PNG chunk flood": lambda: images.png_with_chunks(MAX_PNG_CHUNKS + 1),
}


def test_an_upload_over_the_limit_says_the_limit_in_mib(aws) -> None:
    # Given an upload larger than the stack takes (S3 held it; the caption step reads it first)
    clients.s3().put_object(Bucket=aws.uploads_bucket, Key="uploads/big", Body=b"x" * (2 * 2**20 + 1))
    with pytest.raises(InvalidImage) as caught:
        storage.read_upload(clients.s3(), bucket=aws.uploads_bucket, key="uploads/big", max_bytes=2 * 2**20)
    assert caught.value.public_message == "the photo is larger than 2 MiB, the most we take; send a smaller one"


@pytest.mark.parametrize("upload", UPLOADS, ids=list(UPLOADS))
def test_a_refused_upload_is_explained_in_our_words(upload: str) -> None:
    error = _rejection(UPLOADS[upload]())
    assert PYTHONISMS.search(error.public_message) is None, error.public_message


def test_too_many_pixels_says_the_limit() -> None:
    error = _rejection(images.png((4000, 3000)), max_pixels=10_000_000)
    assert (error.code, "at most 10 megapixels" in error.public_message) == ("IMAGE_TOO_LARGE", True)


def test_a_truncated_photo_names_no_exception() -> None:
    error = _rejection(images.truncated_jpeg())
    assert error.public_message == "the photo's data is cut short or damaged; save it again, or send another photo"


FAILURE_MESSAGES = {
    **{f"provider {code}": message for code, message in PROVIDER_MESSAGES.items()},
    **{f"stuck {status}": message for status, message in sweeper.STUCK_MESSAGES.items()},
    "internal": INTERNAL_MESSAGE,
}


@pytest.mark.parametrize("message", FAILURE_MESSAGES.values(), ids=list(FAILURE_MESSAGES))
def test_a_failed_requests_reason_is_plain_and_says_what_to_do(message: str) -> None:
    assert (PYTHONISMS.search(message), bool(re.search(r"please|try|send", message))) == (None, True)


@pytest.mark.parametrize("refusal", [QuotaExceeded, IpQuotaExceeded, DailyBudgetExhausted])
def test_a_daily_limit_says_when_to_try_again(refusal: type[QuotaExceeded]) -> None:
    # Given a limit reached 5 hours before midnight UTC
    message = refusal(limit=20, retry_after=5 * 3600).message
    assert "try again after 00:00 UTC, in 5 hours" in message


API_REFUSALS = {
    "not an email": {"email": "not-an-email", "content_type": "image/jpeg"},
    "no @": {"email": "jane.example.com", "content_type": "image/jpeg"},
    "PDF": {"email": "a@example.com", "content_type": "application/pdf"},
    "negative size": {"email": "a@example.com", "content_type": "image/png", "size": -1},
    "size as text": {"email": "a@example.com", "content_type": "image/png", "size": "100"},
    "unknown field": {"email": "a@example.com", "content_type": "image/png", "key": "../x"},
    "missing email": {"content_type": "image/png"},
    "unknown style": {"email": "a@example.com", "content_type": "image/png", "style": "vaporwave"},
}


@pytest.mark.parametrize("body", API_REFUSALS.values(), ids=list(API_REFUSALS))
def test_an_api_refusal_is_in_our_words(aws, body: dict) -> None:
    error = call("POST", "/requests", body=body).json()["error"]
    shown = [error["message"], *(d["message"] for d in error.get("details") or [] if isinstance(d, dict))]
    assert [m for m in shown if PYTHONISMS.search(m)] == []


def test_a_bad_address_reads_as_advice(aws) -> None:
    error = call("POST", "/requests", body=API_REFUSALS["no @"]).json()["error"]
    assert error["message"] == "check the email address: it should look like name@example.com"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/requests/3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"), ("GET", "/nowhere"), ("DELETE", "/requests/x")],
)
def test_other_api_refusals_are_plain(aws, method: str, path: str) -> None:
    message = call(method, path).json()["error"]["message"]
    assert PYTHONISMS.search(message) is None


def test_the_delete_refusal_says_what_to_do(aws) -> None:
    record = finished_request(aws, status=Status.COMPLETED)
    message = call("DELETE", f"/requests/{record.id}").json()["error"]["message"]
    assert message == "only the link in the email can delete this request: open the result page from that email"
