"""A corpus of bad and awkward uploads through the whole graph: each ends in the right final state with
a clear error code, the owner gets exactly one email, and no function crashes on it (nothing in the
on-failure queue, no delivery that ended in an error).
"""

from __future__ import annotations

import email
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from email import policy

import pytest
from PIL import Image

from tests.fixtures import images
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration


def _huge_png() -> bytes:
    """A real, fully decodable PNG just over the 64-megapixel limit (8200 x 7900): tiny once compressed."""
    out = io.BytesIO()
    Image.new("L", (8200, 7900), 90).save(out, "PNG")
    return out.getvalue()


@dataclass(frozen=True)
class Upload:
    name: str
    make: Callable[[], bytes]
    declared: str  # the content type the client declares
    status: str
    code: str | None = None  # the error code when FAILED


HTML = b"<!DOCTYPE html><html><head><title>hi</title></head><body><img src=x onerror=alert(1)></body></html>"

CORPUS = [
    Upload("plain-text", lambda: b"just some words, not a picture\n" * 4, "image/png", "FAILED", "NOT_AN_IMAGE"),
    Upload("html", lambda: HTML, "image/jpeg", "FAILED", "NOT_AN_IMAGE"),
    Upload("truncated-jpeg", images.truncated_jpeg, "image/jpeg", "FAILED", "IMAGE_TRUNCATED"),
    Upload("png-bomb", images.bomb_png, "image/png", "FAILED", "IMAGE_TOO_LARGE"),
    Upload("over-the-pixel-limit", _huge_png, "image/png", "FAILED", "IMAGE_TOO_LARGE"),
    Upload("jpeg-declared-as-png", images.jpeg, "image/png", "FAILED", "CONTENT_TYPE_MISMATCH"),
    Upload("animated-gif", images.gif_animated, "image/gif", "COMPLETED"),
    Upload("exif-rotated-jpeg", images.exif_rotated_jpeg, "image/jpeg", "COMPLETED"),
    Upload("cmyk-jpeg", images.cmyk_jpeg, "image/jpeg", "COMPLETED"),
    Upload("16-bit-png", images.png_16bit, "image/png", "COMPLETED"),
    *(
        Upload(name, *images.ODD_SHAPES[name], "COMPLETED")  # type: ignore[arg-type]
        for name in ("1x1-png", "1x1-gif", "4000x40-jpeg", "640x3-png")
    ),
    Upload("jpeg-scan-bomb", images.scan_bomb_jpeg, "image/jpeg", "FAILED", "IMAGE_TOO_COMPLEX"),
    Upload("jpeg-segment-flood", lambda: images.jpeg_with_segments(5000), "image/jpeg", "FAILED", "IMAGE_TOO_COMPLEX"),
    Upload(
        "png-ztxt-bomb",
        lambda: images.png_with_text(b"\0" * 2**24, b"zTXt"),
        "image/png",
        "FAILED",
        "IMAGE_TOO_COMPLEX",
    ),
    Upload("gif-70000-byte-comment", lambda: images.gif_with_comment(70_000), "image/gif", "COMPLETED"),
]


def _failure_queue_messages(pipeline: Pipeline) -> list[dict]:
    """What the functions' on-failure destination holds (peeked at, left in place)."""
    sqs = pipeline.stack.client("sqs")
    assert pipeline.stack.app is not None
    url = sqs.get_queue_url(QueueName=pipeline.stack.app.queues["FailureQueue"].name)["QueueUrl"]
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=0)
    return [json.loads(message["Body"]) for message in received.get("Messages", [])]


def _delivery_lines(caplog: pytest.LogCaptureFixture, request_id: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "reimagine_emulator" and request_id in r.getMessage()]


def _assert_nothing_crashed(pipeline: Pipeline, caplog: pytest.LogCaptureFixture, request_id: str) -> None:
    lines = _delivery_lines(caplog, request_id)
    # The log was really captured: the caption step's delivery of this upload is in it.
    assert any(line.startswith("CaptionFunction s3 ") for line in lines), lines
    assert not [line for line in lines if " error (" in line or "on-failure" in line], lines
    assert _failure_queue_messages(pipeline) == []


def _expect(pipeline: Pipeline, request_id: str, address: str, upload: Upload) -> None:
    record = pipeline.status(request_id)
    assert record["status"] == upload.status, record
    if upload.code is None:
        assert "error" not in record
        assert f"results/{request_id}.png" in pipeline.result_keys()
    else:
        assert record["error"]["code"] == upload.code, record
        assert record["error"]["message"]
        assert f"results/{request_id}.png" not in pipeline.result_keys()
    mails = pipeline.mail_to(address)
    assert len(mails) == 1, mails
    if upload.code is not None:
        message = email.message_from_bytes(mails[0].file.read_bytes(), policy=policy.default)
        text = message.get_body(preferencelist=("plain",))
        assert text is not None and upload.code in text.get_content()


@pytest.mark.parametrize("upload", CORPUS, ids=[u.name for u in CORPUS])
def test_each_bad_or_awkward_upload_ends_in_its_final_state_with_one_email(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture, upload: Upload
) -> None:
    caplog.set_level(logging.INFO, logger="reimagine_emulator")
    address = f"{upload.name}@example.com"
    request_id = pipeline.submit(upload.make(), upload.declared, email=address)
    _expect(pipeline, request_id, address, upload)
    _assert_nothing_crashed(pipeline, caplog, request_id)


def test_an_empty_object_in_the_bucket_ends_failed_upload_empty(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    # Through the presigned POST this cannot happen on S3: its policy's content-length-range starts at
    # 1 byte. moto does not enforce POST policies, so the empty object is put straight into the bucket,
    # as if it had got there some other way; the caption step must still refuse it cleanly.
    caplog.set_level(logging.INFO, logger="reimagine_emulator")
    address = "empty@example.com"
    created = pipeline.create(address, "image/jpeg")
    fields = created["upload"]["fields"]
    bucket = pipeline.stack.app.functions["CaptionFunction"].environment["UPLOADS_BUCKET"]
    pipeline.stack.client("s3").put_object(Bucket=bucket, Key=fields["key"], Body=b"", ContentType="image/jpeg")
    pipeline.stack.drain()
    _expect(pipeline, created["id"], address, Upload("empty", bytes, "image/jpeg", "FAILED", "UPLOAD_EMPTY"))
    _assert_nothing_crashed(pipeline, caplog, created["id"])


def test_what_survives_preparation_is_the_right_picture(pipeline: Pipeline) -> None:
    # The first frame of the GIF is red; the EXIF-rotated JPEG is stored landscape but shown portrait.
    gif = pipeline.submit(images.gif_animated(), "image/gif", email="first-frame@example.com")
    assert "red" in pipeline.status(gif)["caption"]
    rotated = pipeline.submit(images.exif_rotated_jpeg(), "image/jpeg", email="rotated@example.com")
    assert "portrait" in pipeline.status(rotated)["caption"]


def test_a_decode_bomb_fails_at_once_while_a_photo_sent_beside_it_completes(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a decode-work bomb (a 2000x2000 progressive JPEG repeating its last scan 1000 times, a few
    # seconds of CPU to decode in full) and an ordinary photo, both uploaded before either is processed
    caplog.set_level(logging.INFO, logger="reimagine_emulator")
    bomb, photo = images.scan_bomb_jpeg((2000, 2000), repeats=1000), images.photo_like(1600, 1200)
    sent = {}
    for address, data in (("bomb@example.com", bomb), ("beside@example.com", photo)):
        created = pipeline.create(address, "image/jpeg", len(data))
        assert pipeline.upload(created, data).status_code == 204
        sent[address] = created["id"]
    # When the pipeline runs
    pipeline.stack.drain()
    # Then the bomb is FAILED IMAGE_TOO_COMPLEX with no crash or retry on the way, and the photo COMPLETED
    _expect(
        pipeline, sent["bomb@example.com"], "bomb@example.com", Upload("bomb", bytes, "", "FAILED", "IMAGE_TOO_COMPLEX")
    )
    _expect(pipeline, sent["beside@example.com"], "beside@example.com", Upload("photo", bytes, "", "COMPLETED"))
    _assert_nothing_crashed(pipeline, caplog, sent["bomb@example.com"])
