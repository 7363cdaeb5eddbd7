"""The body of `POST /requests`, apart from `reimagine.models` because it validates an email address.

EmailStr imports email-validator (and dnspython) when the model's schema is built, tens of
milliseconds that only the API needs, and there only `POST /requests`: so it is built on first use.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from reimagine.models import ContentType


class CreateRequestBody(BaseModel):
    """Body of `POST /requests`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)

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
