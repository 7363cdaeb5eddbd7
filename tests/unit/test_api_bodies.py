"""Hostile bodies for `POST /requests`: each is a 4xx in the one error shape, and creates nothing.

Events are built by the local stack's HttpApi event factory, as API Gateway would send them.
"""

from __future__ import annotations

import json

import pytest

from reimagine import clients
from reimagine.body_guard import MAX_BODY_BYTES
from reimagine.handlers import api
from reimagine_emulator.api_events import build_event, to_http_response
from reimagine_tools.template import HttpRoute
from tests.fixtures.lambda_context import lambda_context

VALID = {"email": "jane.doe@example.com", "content_type": "image/jpeg"}


def post(body: bytes | None, content_type: str | None = "application/json") -> tuple[int, dict]:
    event = build_event(
        route=HttpRoute("POST", "/requests"),
        path_parameters={},
        method="POST",
        raw_path="/requests",
        headers={} if content_type is None else {"content-type": content_type},
        body=body,
    )
    response = to_http_response(api.handler(event, lambda_context("ApiFunction", 15, 256)))
    return response.status, response.json()


def records(cfg) -> int:  # type: ignore[no-untyped-def]
    return clients.dynamodb().scan(TableName=cfg.table_name)["Count"]


def test_a_body_nested_1000_deep_is_a_422(aws) -> None:
    # Given 2 KB of JSON nested 1000 levels deep (json.loads raised RecursionError: a raw 500)
    body = b'{"email": "a@example.com", "content_type": "image/jpeg", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    # When it is posted
    status, payload = post(body)
    # Then it is refused in the error shape, saying why
    assert (status, payload["error"]["code"], payload["error"]["details"][0]["type"]) == (
        422,
        "VALIDATION_ERROR",
        "json_too_deep",
    )


def test_a_5000_digit_size_is_a_422(aws) -> None:
    # Given a size of 5000 digits (int() raised ValueError past Python's digit limit: a raw 500)
    body = b'{"email": "a@example.com", "content_type": "image/jpeg", "size": ' + b"9" * 5000 + b"}"
    status, payload = post(body)
    assert (status, payload["error"]["details"][0]["type"]) == (422, "number_too_long")


def test_a_body_over_the_cap_is_a_413_and_creates_nothing(aws) -> None:
    body = json.dumps({**VALID, "pad": "x" * MAX_BODY_BYTES}).encode()
    status, payload = post(body)
    assert (status, payload["error"]["code"], records(aws)) == (413, "BODY_TOO_LARGE", 0)


@pytest.mark.parametrize("content_type", ["APPLICATION/JSON", "Application/Json; charset=UTF-8"])
def test_the_json_media_type_is_matched_case_insensitively(aws, content_type: str) -> None:
    # Given a valid body labelled with the media type in capitals (a 415 in Powertools' own shape before)
    status, payload = post(json.dumps(VALID).encode(), content_type)
    # Then the request is created
    assert (status, payload["status"]) == (201, "PENDING_UPLOAD")


@pytest.mark.parametrize("content_type", [None, "", " ; charset=utf-8"], ids=["absent", "empty", "parameters-only"])
def test_a_post_that_does_not_say_it_is_json_is_a_415_and_creates_nothing(aws, content_type: str | None) -> None:
    # Given a valid body sent without a media type (it was parsed as JSON anyway: 201)
    status, payload = post(json.dumps(VALID).encode(), content_type)
    # Then it is refused as the README says, in the error shape, and nothing is created
    assert (status, payload["error"]["code"], records(aws)) == (415, "UNSUPPORTED_MEDIA_TYPE", 0)


def test_an_empty_post_without_a_content_type_is_a_415(aws) -> None:
    status, payload = post(None, None)
    assert (status, payload["error"]["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("size", [True, "100", 100.0])
def test_size_must_be_a_json_integer_not_coerced(aws, size: object) -> None:
    # Given a size that is a boolean, a string or a float (each was coerced to an int before)
    status, payload = post(json.dumps({**VALID, "size": size}).encode())
    # Then it is refused at that field, and nothing is created
    assert (status, payload["error"]["details"][0]["loc"], records(aws)) == (422, ["body", "size"], 0)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[" * 1000 + b"]" * 1000, "application/json"),
        (b'{"size": ' + b"1" * 5000 + b"}", "application/json"),
        (b"x" * (MAX_BODY_BYTES + 1), "application/json"),
        (b'{"email": 1}', "text/plain"),
        (json.dumps(VALID).encode(), None),
        (b"\xff\xfe not utf-8", "application/json"),
        (b"{not json", "APPLICATION/JSON"),
        (json.dumps({**VALID, "size": True}).encode(), "application/json"),
    ],
    ids=["deep", "digits", "big", "media-type", "no-media-type", "not-utf8", "not-json", "bool-size"],
)
def test_every_refusal_is_in_the_one_error_shape(aws, body: bytes, content_type: str | None) -> None:
    status, payload = post(body, content_type)
    assert 400 <= status < 500
    assert set(payload) == {"error"} and {"code", "message"} <= set(payload["error"]), payload
