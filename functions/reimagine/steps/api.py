"""The API's logic: create a request with its upload slot, show a request, find its result."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from reimagine import storage
from reimagine.errors import ApiError
from reimagine.models import (
    CreateRequestResponse,
    Links,
    RequestRecord,
    RequestView,
    ResultLink,
    Status,
    StyleRef,
    StylesView,
    StyleView,
    is_request_id,
    mask_email,
    new_request_id,
    upload_key,
    utcnow,
)
from reimagine.request_body import CreateRequestBody
from reimagine.styles import catalogue

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from reimagine.config import Settings
    from reimagine.quota import DailyQuota
    from reimagine.records import RequestStore
    from reimagine.suppression import SuppressionList


class UploadTooLarge(ApiError):
    """The declared size is over the upload limit: refused before a slot exists or the quota counts it."""

    def __init__(self, size: int, limit: int) -> None:
        self.size, self.limit = size, limit
        super().__init__(
            413,
            "UPLOAD_TOO_LARGE",
            f"the image may be at most {limit} bytes ({limit / 2**20:.0f} MiB); this one is {size}",
            {"max_bytes": limit},
        )


class UnknownStyle(ApiError):
    """The request names a style that is not on offer: refused before a slot exists or the quota counts it."""

    def __init__(self, allowed: list[str]) -> None:
        self.allowed = allowed
        super().__init__(
            422, "UNKNOWN_STYLE", f"there is no such style; choose one of: {', '.join(allowed)}", {"allowed": allowed}
        )


class UnknownRequest(ApiError):
    """No request has this id (the router's own "no such route" is another error: ROUTE_NOT_FOUND)."""

    def __init__(self) -> None:
        super().__init__(404, "NOT_FOUND", "no request with that id")


_NOT_YET = "the new picture is not ready yet; try again in a moment"
_NO_RESULT = {
    Status.FAILED: "this request failed, so it has no picture; see its error",
    Status.DELETED: "the pictures were deleted at their owner's request",
}


class NotReady(ApiError):
    """The request exists but has no result (yet, or ever): the message says which."""

    def __init__(self, record: RequestRecord) -> None:
        self.record = record
        super().__init__(
            409, "RESULT_NOT_READY", _NO_RESULT.get(record.status, _NOT_YET), {"status": record.status.value}
        )


def create_request(
    body: CreateRequestBody,
    *,
    store: RequestStore,
    s3: S3Client,
    settings: Settings,
    quota: DailyQuota | None = None,
    source_ip: str | None = None,
    suppressions: SuppressionList | None = None,
) -> CreateRequestResponse:
    """Create the record and its upload slot; with a quota, count it first (QuotaExceeded stops here).

    A suppressed address is refused before the quota counts anything (AddressSuppressed).
    """
    # Otherwise the policy would be bound to exactly the declared size, over the limit.
    if body.size is not None and body.size > settings.max_upload_bytes:
        raise UploadTooLarge(body.size, settings.max_upload_bytes)
    styles = catalogue(settings.styles)
    style = styles.get(body.style)
    if style is None:
        raise UnknownStyle(styles.ids)
    if suppressions is not None:
        suppressions.check(str(body.email))
    if quota is not None:
        quota.consume(str(body.email), source_ip)
    now = utcnow()
    record = RequestRecord(
        id=new_request_id(),
        status=Status.PENDING_UPLOAD,
        email=str(body.email),
        content_type=body.content_type,
        declared_size=body.size,
        style=style.id,
        created_at=now,
        updated_at=now,
        expires_at=int((now + timedelta(days=settings.record_ttl_days)).timestamp()),
    )
    store.create(record)
    upload = storage.presigned_upload(
        s3,
        bucket=settings.uploads_bucket,
        key=upload_key(record.id),
        content_type=body.content_type,
        max_bytes=settings.max_upload_bytes,
        size=body.size,
        expires_in=settings.upload_url_ttl_seconds,
    )
    return CreateRequestResponse(
        id=record.id,
        status=record.status,
        upload=upload,
        links=Links(self_=f"/requests/{record.id}", result=f"/requests/{record.id}/result"),
    )


def find_request(request_id: str, *, store: RequestStore) -> RequestRecord | None:
    """The record, or None for an unknown id (a malformed id is simply unknown)."""
    return store.get(request_id) if is_request_id(request_id) else None


def get_request(request_id: str, *, store: RequestStore) -> RequestRecord:
    """The record; UnknownRequest (404) for an unknown or malformed id."""
    record = find_request(request_id, store=store)
    if record is None:
        raise UnknownRequest
    return record


def result_link(record: RequestRecord, *, s3: S3Client, settings: Settings) -> ResultLink:
    if record.status is not Status.COMPLETED or not record.result_key:
        raise NotReady(record)
    return storage.presigned_result(
        s3, bucket=settings.results_bucket, key=record.result_key, expires_in=settings.result_url_ttl_seconds
    )


def list_styles(settings: Settings) -> StylesView:
    styles = catalogue(settings.styles)
    return StylesView(
        default=styles.default,
        styles=[StyleView(id=s.id, name=s.name, description=s.description) for s in styles.styles],
    )


def style_of(record: RequestRecord, settings: Settings) -> StyleRef | None:
    """The style the record was painted in (a style removed since is still named by its id)."""
    if record.status is Status.DELETED:
        return None
    style = catalogue(settings.styles).for_record(record.style)
    if record.style and style.id != record.style:
        return StyleRef(id=record.style, name=record.style)
    return StyleRef(id=style.id, name=style.name)


def view_request(record: RequestRecord, *, s3: S3Client, settings: Settings) -> RequestView:
    result = result_link(record, s3=s3, settings=settings) if record.status is Status.COMPLETED else None
    return RequestView(
        id=record.id,
        status=record.status,
        email=mask_email(record.email) if record.email else None,
        style=style_of(record, settings),
        caption=record.caption,
        caption_provider=record.caption_provider,
        caption_model=record.caption_model,
        image_model=record.image_model,
        result=result,
        error=record.error,
        created_at=record.created_at,
        updated_at=record.updated_at,
        notified_at=record.notified_at,
    )
