"""S3 access: presigned uploads and result links, reading uploads within bounds, writing results."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from reimagine.errors import InvalidImage, PipelineError
from reimagine.models import ResultLink, UploadForm, utcnow

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def presigned_upload(
    s3: S3Client,
    *,
    bucket: str,
    key: str,
    content_type: str,
    max_bytes: int,
    size: int | None,
    expires_in: int,
) -> UploadForm:
    """A POST policy bound to one key, one content type and a size range (the exact size when declared)."""
    low, high = (size, size) if size else (1, max_bytes)
    post = s3.generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", low, high]],
        ExpiresIn=expires_in,
    )
    return UploadForm(url=post["url"], fields=post["fields"], expires_at=utcnow() + timedelta(seconds=expires_in))


def presigned_result(s3: S3Client, *, bucket: str, key: str, expires_in: int) -> ResultLink:
    url = s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": key, "ResponseContentType": "image/png"},
        ExpiresIn=expires_in,
    )
    return ResultLink(url=url, expires_at=utcnow() + timedelta(seconds=expires_in))


def upload_origin(s3: S3Client, *, bucket: str) -> str:
    """Where this client's presigned POSTs to `bucket` go (signed locally, no request is made)."""
    return _origin(s3.generate_presigned_post(Bucket=bucket, Key="uploads/origin")["url"])


def result_origin(s3: S3Client, *, bucket: str) -> str:
    """Where this client's presigned result URLs for `bucket` point (signed locally, no request is made)."""
    return _origin(s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "results/origin.png"}))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def is_missing(error: ClientError) -> bool:
    """Whether S3 answered that the object is not there (a HEAD says 404, a GET NoSuchKey)."""
    return error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def read_upload(s3: S3Client, *, bucket: str, key: str, max_bytes: int) -> bytes:
    """The uploaded bytes, refusing anything over `max_bytes` by its real size before downloading it."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_missing(exc):
            raise PipelineError(
                "your photo was no longer stored when we came to read it; please send it again", code="UPLOAD_MISSING"
            ) from None
        raise
    size = head["ContentLength"]
    if size == 0:
        raise InvalidImage("the file is empty; send a photo", code="UPLOAD_EMPTY")
    if size > max_bytes:
        raise InvalidImage(_too_large(max_bytes), code="UPLOAD_TOO_LARGE")
    # Range-bound the read too, so an object replaced after the HEAD cannot make us read more.
    body = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{max_bytes}")["Body"]
    data = body.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InvalidImage(_too_large(max_bytes), code="UPLOAD_TOO_LARGE")
    return data


def _too_large(max_bytes: int) -> str:
    return f"the photo is larger than {max_bytes / 2**20:g} MiB, the most we take; send a smaller one"


def put_result(s3: S3Client, *, bucket: str, key: str, png: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=png, ContentType="image/png")


class UploadGone(PipelineError):
    """The upload is no longer in the bucket (expired or removed): nothing can announce it again."""

    def __init__(self) -> None:
        super().__init__("the upload is no longer in the bucket", code="UPLOAD_MISSING")


def reannounce_upload(s3: S3Client, *, bucket: str, key: str) -> None:
    """Make S3 announce the upload again (`ObjectCreated:Copy`), so that captioning starts over from
    the same entrance as a new upload: Lambda's async queue, its retries and its concurrency limit.

    The object is copied onto itself; S3 allows that only when something changes, so the metadata are
    REPLACEd with what they were (same content type and user metadata, same bytes)."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
        s3.copy_object(
            Bucket=bucket,
            Key=key,
            CopySource={"Bucket": bucket, "Key": key},
            MetadataDirective="REPLACE",
            ContentType=head.get("ContentType", "application/octet-stream"),
            Metadata=head.get("Metadata", {}),
        )
    except ClientError as exc:
        if is_missing(exc):
            raise UploadGone from None
        raise
