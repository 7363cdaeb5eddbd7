"""What only LocalStack can answer: S3 itself enforcing the presigned POST policy the API hands out.

moto accepts any POST to a bucket, so these run on the localstack backend only (deselected without it).
A refused upload writes no object, so no notification fires and the request stays PENDING_UPLOAD.
"""

from __future__ import annotations

import pytest
import requests
from botocore.exceptions import ClientError

from reimagine import clients, storage
from tests.integration.conftest import Pipeline, image_bytes

pytestmark = [pytest.mark.integration, pytest.mark.localstack]


def _post(url: str, fields: dict[str, str], data: bytes) -> requests.Response:
    return requests.post(url, data=fields, files={"file": ("upload", data)}, timeout=30)


def _uploads_bucket(pipeline: Pipeline) -> str:
    return pipeline.app.functions["ApiFunction"].environment["UPLOADS_BUCKET"]


def _assert_nothing_arrived(pipeline: Pipeline, request_id: str) -> None:
    pipeline.stack.drain()
    assert pipeline.status(request_id)["status"] == "PENDING_UPLOAD"
    with pytest.raises(ClientError) as missing:
        pipeline.stack.client("s3").head_object(Bucket=_uploads_bucket(pipeline), Key=f"uploads/{request_id}")
    assert missing.value.response["Error"]["Code"] in ("404", "NoSuchKey")


def test_an_upload_larger_or_smaller_than_declared_is_refused_by_s3(pipeline: Pipeline):
    data = image_bytes("PNG")
    created = pipeline.create("declared@example.com", "image/png", size=len(data))
    form = created["upload"]

    too_large = _post(form["url"], form["fields"], data + b"\0")
    assert too_large.status_code == 400 and "EntityTooLarge" in too_large.text
    too_small = _post(form["url"], form["fields"], data[:-1])
    assert too_small.status_code == 400 and "EntityTooSmall" in too_small.text
    _assert_nothing_arrived(pipeline, created["id"])

    # The same form with the declared bytes is accepted: the refusals were the size condition's.
    assert _post(form["url"], form["fields"], data).status_code == 204
    pipeline.stack.drain()
    assert pipeline.status(created["id"])["status"] == "COMPLETED"


def test_an_upload_over_the_size_limit_is_refused_when_no_size_was_declared(pipeline: Pipeline):
    created = pipeline.create("undeclared@example.com", "image/jpeg")
    # The API's own form allows up to MAX_UPLOAD_BYTES (20 MiB by default); the same policy with a
    # small limit shows that S3 applies the limit, without sending megabytes.
    form = storage.presigned_upload(
        clients.s3(),
        bucket=_uploads_bucket(pipeline),
        key=f"uploads/{created['id']}",
        content_type="image/jpeg",
        max_bytes=1024,
        size=None,
        expires_in=300,
    )
    refused = _post(form.url, form.fields, b"\xff" * 1025)
    assert refused.status_code == 400 and "EntityTooLarge" in refused.text
    _assert_nothing_arrived(pipeline, created["id"])


def test_an_upload_with_another_content_type_is_refused_by_s3(pipeline: Pipeline):
    created = pipeline.create("type@example.com", "image/png")
    form = created["upload"]
    fields = {**form["fields"], "Content-Type": "image/jpeg"}
    refused = _post(form["url"], fields, image_bytes("JPEG"))
    assert refused.status_code == 403 and "Policy Condition failed" in refused.text
    _assert_nothing_arrived(pipeline, created["id"])


def test_an_upload_to_another_key_is_refused_by_s3(pipeline: Pipeline):
    created = pipeline.create("key@example.com", "image/png")
    other = pipeline.create("other@example.com", "image/png")
    form = created["upload"]
    fields = {**form["fields"], "key": f"uploads/{other['id']}"}
    refused = _post(form["url"], fields, image_bytes("PNG"))
    assert refused.status_code == 403
    _assert_nothing_arrived(pipeline, created["id"])
    _assert_nothing_arrived(pipeline, other["id"])


def test_an_expired_upload_policy_is_refused_by_s3(pipeline: Pipeline):
    created = pipeline.create("late@example.com", "image/png")
    # The API's conditions for this request, with an expiry already past (no waiting for a clock).
    form = storage.presigned_upload(
        clients.s3(),
        bucket=_uploads_bucket(pipeline),
        key=f"uploads/{created['id']}",
        content_type="image/png",
        max_bytes=1024 * 1024,
        size=None,
        expires_in=-60,
    )
    data = image_bytes("PNG")
    refused = _post(form.url, form.fields, data)
    assert refused.status_code == 403 and "Policy expired" in refused.text
    _assert_nothing_arrived(pipeline, created["id"])
    # The unexpired form the API handed out still works for the same bytes.
    assert pipeline.upload(created, data).status_code == 204
