"""A person's whole path on the local stack (issue 21): choose a style, open the email's result page,
see both pictures, delete them with the email's key; the presigned links stop working at once."""

from __future__ import annotations

import email
import re
from email import policy

import pytest
import requests

from tests.integration.conftest import SAMPLE_PHOTO, Pipeline

pytestmark = pytest.mark.integration


def _page_link(mail_file) -> tuple[str, str]:
    """The result page's path and the delete key in its fragment, from the email's text."""
    message = email.message_from_bytes(mail_file.read_bytes(), policy=policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()
    found = re.search(r"https?://\S+?(/results/[0-9a-f-]+)#key=([A-Za-z0-9_-]+)", text)
    assert found, text
    return found.group(1), found.group(2)


# What a presigned GET of each deleted picture (the upload, the result) answers, per backend: both
# objects are gone. moto answers a missing key whose URL carries `response-content-type` (the result
# link sets it) with 403 SignatureDoesNotMatch, not 404 NoSuchKey; S3 itself answers 403 AccessDenied
# where the signer may not list the bucket.
GONE = {"moto": [404, 403], "localstack": [404, 404]}


def _images(html: str) -> list[str]:
    return [u.replace("&amp;", "&") for u in re.findall(r'<img src="([^"]+)"', html)]


def test_the_emails_page_shows_both_pictures_and_its_key_deletes_them(pipeline: Pipeline) -> None:
    # Given a photo sent with a chosen style, all the way through
    data = SAMPLE_PHOTO.read_bytes()
    created = pipeline.stack.api_invoke(
        "POST",
        "/requests",
        {"email": "owner@example.com", "content_type": "image/jpeg", "size": len(data), "style": "comic-book"},
    ).json()
    assert pipeline.upload(created, data).status_code == 204
    pipeline.stack.drain()
    request_id = created["id"]
    assert pipeline.status(request_id)["style"] == {"id": "comic-book", "name": "Comic book"}
    # When the owner opens the result page from the email
    [mail] = pipeline.mail_to("owner@example.com")
    path, key = _page_link(mail.file)
    page = pipeline.stack.api_invoke("GET", path)
    html = page.body.decode("utf-8")
    # Then both pictures load, and the style is named
    pictures = _images(html)
    assert ([requests.get(u, timeout=30).status_code for u in pictures], "Comic book" in html) == ([200, 200], True)
    # When the owner deletes with the email's key
    deleted = pipeline.stack.api_invoke("DELETE", f"/requests/{request_id}", headers={"authorization": f"Bearer {key}"})
    # Then the request reads DELETED, the page says so, and the links the page gave no longer fetch anything
    after = [requests.get(u, timeout=30).status_code for u in pictures]
    assert (
        deleted.status,
        pipeline.status(request_id)["status"],
        "<h1>Deleted</h1>" in pipeline.stack.api_invoke("GET", path).body.decode(),
        after,
        f"results/{request_id}.png" in pipeline.result_keys(),
    ) == (200, "DELETED", True, GONE[pipeline.backend], False)


def test_the_page_link_works_only_for_the_page_not_as_a_delete_key_from_the_id(pipeline: Pipeline) -> None:
    request_id = pipeline.submit(SAMPLE_PHOTO.read_bytes(), "image/jpeg", email="other@example.com")
    refused = pipeline.stack.api_invoke(
        "DELETE", f"/requests/{request_id}", headers={"authorization": f"Bearer {request_id}"}
    )
    assert (refused.status, pipeline.status(request_id)["status"]) == (403, "COMPLETED")
