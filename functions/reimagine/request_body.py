"""The body of `POST /requests`, apart from `reimagine.models` because it validates an email address.

Validating addresses imports email-validator (and its IDNA tables), tens of milliseconds of cold
start that only the API function needs.
The schema is built on first use (`defer_build`), so only `POST /requests` pays for it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from reimagine.addresses import MAX_ADDRESS, deliverable_address
from reimagine.models import ContentType

# An address SES can deliver to, stored with its domain in punycode (see reimagine.addresses).
DeliverableEmail = Annotated[
    str,
    Field(max_length=MAX_ADDRESS, json_schema_extra={"format": "email"}),
    AfterValidator(deliverable_address),
]


class CreateRequestBody(BaseModel):
    """Body of `POST /requests`."""

    # Strict: `"size": true` or `"100"` is a client's mistake to report, not to guess at.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True, defer_build=True)

    email: DeliverableEmail = Field(
        description="Where the result is sent. ASCII before the @; an internationalised domain is kept as punycode."
    )
    content_type: ContentType = Field(description="MIME type of the image that will be uploaded.")
    size: int | None = Field(
        default=None, gt=0, description="Exact size in bytes of the upload; when given, S3 enforces it."
    )
    # Checked against the styles on offer by the API (an unknown id is UNKNOWN_STYLE, with the ids allowed).
    style: str | None = Field(
        default=None, max_length=64, description="The id of a style from `GET /styles`; absent: the default style."
    )
