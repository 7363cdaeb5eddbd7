"""Limits a JSON request body must meet before anything parses it for real.

The validator parses the body with `json.loads`, which recurses once per level of nesting (a body
nested 1000 deep raises RecursionError) and turns a 5000-digit number into an int (ValueError past
Python's digit limit): both were 500s. The body of `POST /requests` is one flat object of three
short fields, so far tighter limits cost a real client nothing: the size is capped, nesting is
counted without recursing, and every number is checked for length as it is parsed.
"""

from __future__ import annotations

import json
import re

from reimagine.errors import ApiError
from reimagine.validation_words import InvalidRequest

# A valid body is under 400 bytes; this leaves room for whitespace and \u escapes in the address.
MAX_BODY_BYTES = 8192
# The body is an object of scalars (depth 1); a little room, far below json's recursion limit.
MAX_DEPTH = 8
# The largest number the API takes is a byte count: 20 digits cover any 64-bit integer.
MAX_NUMBER_CHARS = 20

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


class UnsupportedMediaType(ApiError):
    """A body not labelled application/json (a missing Content-Type included)."""

    def __init__(self) -> None:
        super().__init__(415, "UNSUPPORTED_MEDIA_TYPE", "send the body as application/json")


class InvalidBody(ApiError):
    """Bytes that are not UTF-8 text (or base64 that does not decode): no JSON parser gets them."""

    def __init__(self) -> None:
        super().__init__(400, "INVALID_BODY", "the body is not UTF-8 JSON")


class BodyTooLarge(ApiError):
    """A body over MAX_BODY_BYTES (the upload's own limit is UploadTooLarge: the photo is not in the body)."""

    def __init__(self) -> None:
        super().__init__(413, "BODY_TOO_LARGE", f"the body may be at most {MAX_BODY_BYTES} bytes")


def _invalid(message: str, kind: str) -> InvalidRequest:
    # In the validator's own shape (reimagine.validation_words): one problem, at the body as a whole.
    return InvalidRequest(message, [{"loc": ["body"], "message": message, "type": kind}])


def check_json_body(body: bytes) -> ApiError | None:
    """Why `body` may not be handed to the JSON parser, or None when it may."""
    if len(body) > MAX_BODY_BYTES:
        return BodyTooLarge()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidBody()
    if _depth(text) > MAX_DEPTH:
        return _invalid(f"the body nests deeper than {MAX_DEPTH} levels", "json_too_deep")
    try:
        json.loads(text, parse_int=_bounded_int, parse_float=_bounded_float)
    except _NumberTooLong:
        return _invalid(f"a number in the body is longer than {MAX_NUMBER_CHARS} characters", "number_too_long")
    except ValueError:
        return None  # not JSON at all: the validator reports that in its own words
    return None


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects, outside strings; counted, not recursed."""
    deepest = level = 0
    for char in _STRING.sub("", text):
        if char in "[{":
            level += 1
            deepest = max(deepest, level)
        elif char in "]}":
            level -= 1
    return deepest


class _NumberTooLong(ValueError):
    pass


def _bounded_int(digits: str) -> int:
    if len(digits) > MAX_NUMBER_CHARS:
        raise _NumberTooLong
    return int(digits)


def _bounded_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS + 8:  # a sign, a point and an exponent on top of the digits
        raise _NumberTooLong
    return float(literal)
