"""Every refusal of the API answers in one shape: its status, `{"error": {"code", "message", "details"?}}`
(details only when the error has some), `Cache-Control: no-store`, and its own headers (Retry-After).

Refusals are ApiErrors (reimagine.errors), answered in one place (reimagine.handlers.api_app): those the
steps and routes raise, the body guard's (answered before the resolver runs) and the validator's.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from reimagine.body_guard import MAX_BODY_BYTES, BodyTooLarge, InvalidBody, UnsupportedMediaType
from reimagine.capability import DeleteKeyRequired
from reimagine.deletion import NotFinished
from reimagine.errors import ApiError
from reimagine.handlers import api, api_app
from reimagine.models import RequestRecord, Status, new_request_id, utcnow
from reimagine.quota import DailyBudgetExhausted, IpQuotaExceeded, QuotaExceeded
from reimagine.steps import api as api_steps
from reimagine.suppression import AddressSuppressed
from reimagine.validation_words import InvalidRequest
from reimagine_emulator.api_events import HttpResponse, build_event, to_http_response
from reimagine_tools.template import HttpRoute
from tests.fixtures.api_calls import call
from tests.fixtures.lambda_context import lambda_context


def _record(status: Status) -> RequestRecord:
    now = utcnow()
    return RequestRecord(
        id=new_request_id(), status=status, content_type="image/jpeg", created_at=now, updated_at=now, expires_at=0
    )


# One of each refusal the API has, as the step or route that refuses would raise it.
EXAMPLES: list[ApiError] = [
    QuotaExceeded(3, 3600),
    IpQuotaExceeded(20, 59),
    DailyBudgetExhausted(1000, 7200),
    AddressSuppressed(),
    api_steps.UploadTooLarge(30 * 2**20, 20 * 2**20),
    api_steps.UnknownStyle(["watercolour", "comic"]),
    api_steps.UnknownRequest(),
    api_steps.NotReady(_record(Status.FAILED)),
    NotFinished("GENERATING"),
    DeleteKeyRequired(),
    UnsupportedMediaType(),
    InvalidBody(),
    BodyTooLarge(),
    InvalidRequest(
        "email is required", [{"loc": ["body", "email"], "message": "email is required", "type": "missing"}]
    ),
    api_app.RouteNotFound(),
]


def _subclasses(cls: type) -> set[type]:
    direct = set(cls.__subclasses__())
    return direct.union(*(_subclasses(sub) for sub in direct))


def test_every_kind_of_refusal_has_an_example_here() -> None:
    # Given the API loaded (it imports every module that refuses), Then each ApiError subclass is tried below
    assert {type(error) for error in EXAMPLES} == _subclasses(ApiError)


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda error: type(error).__name__)
def test_a_raised_refusal_is_answered_in_the_one_shape(aws, monkeypatch, error: ApiError) -> None:
    # Given the step behind GET /requests/{id} refusing with this error
    def refuse(*args: Any, **kwargs: Any) -> RequestRecord:
        raise error

    monkeypatch.setattr(api_steps, "get_request", refuse)
    # When the route is called
    response = call("GET", f"/requests/{new_request_id()}")
    # Then the answer is the error's status, code, message and details (none when it has none) and headers
    expected: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details is not None:
        expected["details"] = json.loads(json.dumps(error.details))
    assert (response.status, response.json(), _headers(response)) == (
        error.status,
        {"error": expected},
        {"content-type": "application/json", "cache-control": "no-store", **_lower(error.headers)},
    )


@pytest.mark.parametrize(
    ("error", "metrics"),
    [
        (QuotaExceeded(3, 60), ["QuotaExceeded", "RefusedQuotaExceeded"]),
        (IpQuotaExceeded(3, 60), ["QuotaExceeded", "RefusedIpQuotaExceeded"]),
        (DailyBudgetExhausted(3, 60), ["QuotaExceeded", "RefusedDailyBudgetExhausted"]),
        (AddressSuppressed(), ["SuppressedAddressRefused"]),
        (api_steps.UnknownRequest(), []),
    ],
    ids=["address", "network", "service", "suppressed", "not-counted"],
)
def test_refusals_the_dashboards_count_are_counted_once_each(aws, monkeypatch, error: ApiError, metrics) -> None:
    # Given the metrics the answer adds recorded
    counted: list[str] = []
    monkeypatch.setattr(api_app.metrics, "add_metric", lambda *, name, unit, value: counted.append(name))
    # When the refusal is answered
    api_app.refuse(error)
    # Then it is counted under exactly its metrics
    assert counted == metrics


def _send(method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> HttpResponse:
    event = build_event(
        route=HttpRoute(method, path),
        path_parameters={},
        method=method,
        raw_path=path,
        headers={"content-type": content_type} if content_type else {},
        body=body,
    )
    return to_http_response(api.handler(event, lambda_context("ApiFunction", 15, 256)))


VALID = {"email": "jane.doe@example.com", "content_type": "image/jpeg"}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "has_details"),
    [
        (json.dumps(VALID).encode(), "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE", False),
        (b"\xff\xfe not utf-8", "application/json", 400, "INVALID_BODY", False),
        (b"x" * (MAX_BODY_BYTES + 1), "application/json", 413, "BODY_TOO_LARGE", False),
        (b"[" * 1000 + b"]" * 1000, "application/json", 422, "VALIDATION_ERROR", True),
        (b"{not json", "application/json", 422, "VALIDATION_ERROR", True),
        (json.dumps({**VALID, "email": "not-an-email"}).encode(), "application/json", 422, "VALIDATION_ERROR", True),
        (json.dumps({**VALID, "style": "no-such-style"}).encode(), "application/json", 422, "UNKNOWN_STYLE", True),
        (json.dumps({**VALID, "size": 2**40}).encode(), "application/json", 413, "UPLOAD_TOO_LARGE", True),
    ],
    ids=["media-type", "not-utf8", "body-too-large", "too-deep", "not-json", "bad-email", "style", "upload-size"],
)
def test_a_refused_body_is_answered_in_the_one_shape(
    aws, body: bytes, content_type: str, status: int, code: str, has_details: bool
) -> None:
    # When a body the guard, the validator or the step refuses is posted
    response = _send("POST", "/requests", body, content_type)
    payload = response.json()
    # Then only `error` is answered, with a code, a message and details exactly when there are some
    keys = {"code", "message", "details"} if has_details else {"code", "message"}
    assert (response.status, set(payload), set(payload["error"]), payload["error"]["code"]) == (
        status,
        {"error"},
        keys,
        code,
    )
    assert _headers(response) == {"content-type": "application/json", "cache-control": "no-store"}


UNKNOWN_ID = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/nowhere", 404, {"code": "ROUTE_NOT_FOUND", "message": "no such route"}),
        ("GET", f"/requests/{UNKNOWN_ID}", 404, {"code": "NOT_FOUND", "message": "no request with that id"}),
        ("DELETE", f"/requests/{UNKNOWN_ID}", 404, {"code": "NOT_FOUND", "message": "no request with that id"}),
    ],
)
def test_an_unknown_route_or_request_is_answered_in_the_one_shape(aws, method, path, status, error) -> None:
    response = _send(method, path)
    assert (response.status, response.json()) == (status, {"error": error})


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _headers(response: HttpResponse) -> dict[str, str]:
    """The headers the error shape is about (the tracer and the gateway may add others)."""
    present = _lower(response.headers)
    return {k: v for k, v in present.items() if k in ("content-type", "cache-control", "retry-after")}
