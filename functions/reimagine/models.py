"""Pydantic models for everything that crosses a boundary: the request record, API responses.

The body of `POST /requests` lives in `reimagine.request_body`: it validates email addresses, and
only the API function should pay for importing email-validator.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

# The record's status: the state machine (statuses, moves, triggers) is stated in reimagine.lifecycle.
from reimagine.lifecycle import Status

ALLOWED_CONTENT_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
ContentType = Literal["image/jpeg", "image/png", "image/webp", "image/gif"]

# uuid4: 122 random bits from the OS CSPRNG (uuid4 uses os.urandom).
_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def new_request_id() -> str:
    return str(uuid.uuid4())


def is_request_id(value: str) -> bool:
    return bool(_ID_RE.fullmatch(value))


def upload_key(request_id: str) -> str:
    return f"uploads/{request_id}"


def result_key(request_id: str) -> str:
    return f"results/{request_id}.png"


def request_id_from_upload_key(key: str) -> str | None:
    """The id in `uploads/{id}`, or None for any other key (nothing a client sends becomes a path)."""
    prefix, _, rest = key.partition("/")
    return rest if prefix == "uploads" and is_request_id(rest) else None


def mask_email(email: str) -> str:
    """`jane.doe@example.com` -> `j***@e***.com`: the owner recognises it; nobody else learns it."""
    local, _, domain = email.partition("@")
    host, dot, tld = domain.rpartition(".")
    if not dot:
        host, tld = domain, ""
    return f"{local[:1]}***@{host[:1]}***{dot}{tld}"


def utcnow() -> datetime:
    """Now, to the millisecond: the precision the record stores, so a written time reads back equal."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: dict[str, str] | None = None  # e.g. {"stage": "upload"} for CONTENT_BLOCKED

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class RequestRecord(BaseModel):
    """One item of RequestsTable: the single source of truth for one request."""

    id: str
    status: Status
    email: str = ""  # empty in a DELETED tombstone
    content_type: str
    declared_size: int | None = None
    style: str | None = None  # the style id chosen (reimagine.styles); None: the default
    caption: str | None = None
    caption_provider: str | None = None
    caption_model: str | None = None  # the model of the chain that wrote the caption
    image_model: str | None = None  # the model of the chain that painted the picture
    result_key: str | None = None
    error: ErrorInfo | None = None
    created_at: datetime
    updated_at: datetime
    notified_at: datetime | None = None
    expires_at: int
    attempts: int = 0
    lease_until: int | None = None
    # Notification is a step too: claimed until this epoch second; a permanent SES refusal is kept here.
    notify_claimed_until: int | None = None
    notify_error: ErrorInfo | None = None


# ---- API bodies ---------------------------------------------------------------------------------
# Their schemas are built on first use (defer_build): other functions import this module but never
# build them, and each API route builds only the ones it uses.
_BUILT_ON_FIRST_USE = ConfigDict(defer_build=True)


class UploadForm(BaseModel):
    """A presigned S3 POST: send `fields` plus the file (as the last form field `file`) to `url`."""

    model_config = _BUILT_ON_FIRST_USE

    url: str
    fields: dict[str, str]
    expires_at: datetime


class Links(BaseModel):
    model_config = ConfigDict(populate_by_name=True, defer_build=True)

    self_: str = Field(alias="self", serialization_alias="self")
    result: str


class CreateRequestResponse(BaseModel):
    model_config = _BUILT_ON_FIRST_USE

    id: str
    status: Status
    upload: UploadForm
    links: Links


class StyleRef(BaseModel):
    """A style as a request shows it: its id and the name a person reads."""

    id: str
    name: str


class StyleView(StyleRef):
    description: str


class StylesView(BaseModel):
    """What `GET /styles` shows: the styles on offer, in order, and the one used when none is named."""

    model_config = _BUILT_ON_FIRST_USE

    default: str
    styles: list[StyleView]


class ResultLink(BaseModel):
    url: str
    expires_at: datetime


class RequestView(BaseModel):
    """What `GET /requests/{id}` shows: never the full address. Absent fields are left out, not null."""

    model_config = _BUILT_ON_FIRST_USE

    id: str
    status: Status
    email: str | None = Field(default=None, description="The address, masked; absent once DELETED.")
    style: StyleRef | None = Field(default=None, description="The style the picture is painted in.")
    caption: str | None = None
    caption_provider: str | None = Field(
        default=None, description="Who wrote the caption: `offline` means measured, not AI."
    )
    caption_model: str | None = Field(default=None, description="The model that wrote the caption.")
    image_model: str | None = Field(default=None, description="The model that painted the picture.")
    result: ResultLink | None = None
    error: ErrorInfo | None = None
    created_at: datetime
    updated_at: datetime
    notified_at: datetime | None = None

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class ErrorDetail(BaseModel):
    model_config = _BUILT_ON_FIRST_USE

    code: str
    message: str
    details: Any | None = None


class ErrorBody(BaseModel):
    model_config = _BUILT_ON_FIRST_USE

    error: ErrorDetail
