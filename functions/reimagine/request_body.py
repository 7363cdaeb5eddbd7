"""The body of `POST /requests`, apart from `reimagine.models` because it validates an email address.

EmailStr imports email-validator (and dnspython) when the model is defined, tens of milliseconds
of cold start that only the API function needs.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from reimagine.models import ContentType


class CreateRequestBody(BaseModel):
    """Body of `POST /requests`."""

    # Strict: `"size": true` or `"100"` is a client's mistake to report, not to guess at.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    email: Annotated[EmailStr, Field(max_length=254, description="Where the result is sent.")]
    content_type: ContentType = Field(description="MIME type of the image that will be uploaded.")
    size: int | None = Field(
        default=None, gt=0, description="Exact size in bytes of the upload; when given, S3 enforces it."
    )

    @field_validator("email")
    @classmethod
    def _lowercase_domain(cls, value: str) -> str:
        local, _, domain = value.rpartition("@")
        return f"{local}@{domain.lower()}"
