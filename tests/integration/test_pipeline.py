"""Real images through the whole graph: API, presigned upload, S3 notification, caption, stream, generate,
stream, notify; under duplicate delivery of every event, and with bad input."""

from __future__ import annotations

import email
import io
import re
from email import policy

import pytest
import requests
from PIL import Image

from tests.integration.conftest import SAMPLE_PHOTO, Pipeline, image_bytes

pytestmark = pytest.mark.integration


def _link_in(mail_file) -> str:
    message = email.message_from_bytes(mail_file.read_bytes(), policy=policy.default)
    html = message.get_body(preferencelist=("html",)).get_content()
    return re.search(r'href="([^"]+/results/[^"#]+\.png[^"]*)"', html).group(1).replace("&amp;", "&")


@pytest.mark.parametrize(
    ("name", "content_type", "data"),
    [
        ("photo.jpg", "image/jpeg", SAMPLE_PHOTO.read_bytes()),
        ("gradient.png", "image/png", image_bytes("PNG")),
        ("gradient.webp", "image/webp", image_bytes("WEBP")),
    ],
)
def test_an_image_goes_all_the_way_and_its_email_link_downloads_the_result(
    pipeline: Pipeline, name, content_type, data
):
    address = f"{name.replace('.', '-')}@example.com"
    request_id = pipeline.submit(data, content_type, email=address)

    record = pipeline.status(request_id)
    assert record["status"] == "COMPLETED", record
    assert record["caption"] and record["caption_provider"] == "offline"
    assert record["email"] != address and "***" in record["email"]
    assert f"results/{request_id}.png" in pipeline.result_keys()

    mails = pipeline.mail_to(address)
    assert len(mails) == 1
    assert mails[0].subject == "Your reimagined picture is ready"
    downloaded = requests.get(_link_in(mails[0].file), timeout=30)
    assert downloaded.status_code == 200
    with Image.open(io.BytesIO(downloaded.content)) as result:
        assert result.format == "PNG" and result.width > 0

    redirect = pipeline.stack.api_invoke("GET", f"/requests/{request_id}/result")
    assert redirect.status == 302
    location = {k.lower(): v for k, v in redirect.headers.items()}["location"]
    assert requests.get(location, timeout=30).content == downloaded.content


def test_an_animated_gif_is_captioned_from_its_first_frame(pipeline: Pipeline):
    frames = [Image.new("RGB", (64, 64), c) for c in ((250, 20, 20), (20, 250, 20), (20, 20, 250))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    request_id = pipeline.submit(out.getvalue(), "image/gif", email="gif@example.com")
    record = pipeline.status(request_id)
    assert record["status"] == "COMPLETED"
    assert "red" in record["caption"]


def test_every_event_delivered_twice_still_means_one_result_and_one_email(pipeline: Pipeline):
    address = "twice@example.com"
    request_id = pipeline.submit(image_bytes("JPEG"), "image/jpeg", email=address)
    before = pipeline.status(request_id)
    assert before["status"] == "COMPLETED"
    results_before = pipeline.result_keys()

    assert pipeline.recorder.of("CaptionFunction") and pipeline.recorder.of("GenerateFunction")
    assert pipeline.recorder.of("NotifyFunction")
    redelivered = pipeline.redeliver_everything()
    assert redelivered >= 3

    after = pipeline.status(request_id)
    assert after["status"] == "COMPLETED"
    assert after["updated_at"] == before["updated_at"] and after["caption"] == before["caption"]
    assert pipeline.result_keys() == results_before
    assert len(pipeline.mail_to(address)) == 1


def test_a_non_image_ends_failed_with_one_failure_email(pipeline: Pipeline):
    address = "text@example.com"
    request_id = pipeline.submit(b"just some text, not a picture at all", "image/png", email=address)
    record = pipeline.status(request_id)
    assert record["status"] == "FAILED"
    assert record["error"]["code"] == "NOT_AN_IMAGE"
    assert f"results/{request_id}.png" not in pipeline.result_keys()
    mails = pipeline.mail_to(address)
    assert len(mails) == 1 and mails[0].subject == "We could not reimagine your picture"
    assert "NOT_AN_IMAGE" in mails[0].file.read_text()


def test_a_truncated_jpeg_ends_failed(pipeline: Pipeline):
    data = SAMPLE_PHOTO.read_bytes()
    request_id = pipeline.submit(data[: len(data) // 2], "image/jpeg", email="cut@example.com")
    record = pipeline.status(request_id)
    assert (record["status"], record["error"]["code"]) == ("FAILED", "IMAGE_TRUNCATED")


def test_unknown_id_is_404_and_invalid_email_is_422(pipeline: Pipeline):
    unknown = pipeline.stack.api_invoke("GET", "/requests/3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f")
    assert unknown.status == 404 and unknown.json()["error"]["code"] == "NOT_FOUND"
    invalid = pipeline.stack.api_invoke("POST", "/requests", {"email": "nope", "content_type": "image/png"})
    assert invalid.status == 422 and invalid.json()["error"]["code"] == "VALIDATION_ERROR"


def test_a_request_never_uploaded_stays_pending_and_sends_nothing(pipeline: Pipeline):
    created = pipeline.create("never@example.com", "image/png")
    pipeline.stack.drain()
    assert pipeline.status(created["id"])["status"] == "PENDING_UPLOAD"
    assert pipeline.mail_to("never@example.com") == []
