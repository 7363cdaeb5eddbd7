"""What a person reads when `POST /requests` is not valid: our words per field, never pydantic's.

Pydantic's messages name types and validators ("Value error, ...", "Input should be a valid
integer", "Extra inputs are not permitted"); the API keeps pydantic's `type` and `loc` for programs
and gives each problem a sentence a person can act on.
"""

from __future__ import annotations

from typing import Any

from reimagine.errors import ApiError
from reimagine.models import ALLOWED_CONTENT_TYPES

_FIELDS = {
    "email": "check the email address: it should look like name@example.com",
    "content_type": "the photo must be a JPEG, PNG, WEBP or GIF (content_type one of "
    + ", ".join(ALLOWED_CONTENT_TYPES)
    + ")",
    "size": "size is the photo's size in bytes: a whole number greater than 0",
    "style": "style is the id of one of the styles listed at /styles",
}

# How reimagine.addresses' own refusals begin; the email-validator's reasons are replaced by ours.
_OWN_ADDRESS_WORDS = "the part before the @"


def field_of(error: dict[str, Any]) -> str:
    """The body field an error is about ('' for the body as a whole)."""
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    return loc[0] if loc else ""


def plain_message(error: dict[str, Any]) -> str:
    """One pydantic error, in our words."""
    field, kind = field_of(error), str(error.get("type", ""))
    if kind == "missing":
        return f"{field} is required" if field else "the request needs a JSON body"
    if kind == "extra_forbidden":
        return f"{field} is not a field this API takes; send email, content_type, and optionally size and style"
    cause = str((error.get("ctx") or {}).get("error") or "")
    if kind == "value_error" and cause.startswith(_OWN_ADDRESS_WORDS):
        return cause  # our own sentence (reimagine.addresses), without pydantic's "Value error, "
    if field in _FIELDS:
        return _FIELDS[field]
    return "the request body must be a JSON object with email, content_type, and optionally size and style"


def summary(errors: list[dict[str, Any]]) -> str:
    """The one line the error's `message` carries: what to fix, every problem in order, without repeats."""
    return "; ".join(dict.fromkeys(plain_message(e) for e in errors))


class InvalidRequest(ApiError):
    """422 VALIDATION_ERROR: `details` lists each problem as {loc, message, type}, `message` sums them up."""

    def __init__(self, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(422, "VALIDATION_ERROR", message, details)

    @classmethod
    def from_errors(cls, errors: list[dict[str, Any]]) -> InvalidRequest:
        """The validator's errors, only where and what in our words: never echo the submitted values."""
        details = [
            {"loc": [str(part) for part in e.get("loc", ())], "message": plain_message(e), "type": e.get("type")}
            for e in errors
        ]
        return cls(summary(errors), details)
