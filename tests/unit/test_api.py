"""ApiFunction through payload 2.0 events as API Gateway sends them: the contract in DESIGN.md.

Events are built by the local stack's HttpApi event factory (reimagine_emulator.api_events).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from reimagine import clients
from reimagine.handlers import api
from reimagine.models import Status
from reimagine_emulator.api_events import build_event, to_http_response
from reimagine_tools.template import HttpRoute
from tests.fixtures.events import load_event
from tests.fixtures.lambda_context import lambda_context


def call(method: str, path: str, body: dict | str | None = None) -> tuple[int, dict[str, str], Any]:
    """Status, headers (lower-case names) and the body: parsed when JSON, else text."""
    raw = None if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
    event = build_event(
        route=HttpRoute(method, path),
        path_parameters={},
        method=method,
        raw_path=path,
        headers={"content-type": "application/json"} if raw is not None else {},
        body=raw,
    )
    response = to_http_response(api.handler(event, lambda_context("ApiFunction", 15, 256)))
    headers = {k.lower(): v for k, v in response.headers.items()}
    is_json = "json" in headers.get("content-type", "") and response.body
    return response.status, headers, response.json() if is_json else response.body.decode()


def _policy(fields: dict) -> dict:
    return json.loads(base64.b64decode(fields["policy"]))


def _create(email: str = "jane.doe@example.com", **extra) -> dict:
    status, _, body = call("POST", "/requests", {"email": email, "content_type": "image/jpeg", **extra})
    assert status == 201, body
    return body


@pytest.mark.parametrize(
    ("sample", "status"),
    [
        ("api_post_requests.json", 201),
        # the samples' id names no request in a fresh table: each route answers it as unknown
        ("api_get_request.json", 404),
        ("api_get_result.json", 404),
    ],
)
def test_the_samples_are_answered(aws, sample, status):
    # Given a sample event exactly as API Gateway sends it, on an empty table
    event = load_event(sample)

    # When the API handles it
    response = api.handler(event, lambda_context("ApiFunction", 15, 256))

    # Then the route answers it
    assert response["statusCode"] == status


def test_create_returns_an_upload_bound_to_key_type_and_size(aws):
    body = _create(size=1234)
    rid = body["id"]
    assert body["status"] == "PENDING_UPLOAD"
    assert body["links"] == {"self": f"/requests/{rid}", "result": f"/requests/{rid}/result"}
    fields = body["upload"]["fields"]
    assert fields["key"] == f"uploads/{rid}"
    assert fields["Content-Type"] == "image/jpeg"
    policy = _policy(fields)
    assert {"Content-Type": "image/jpeg"} in policy["conditions"]
    assert ["content-length-range", 1234, 1234] in policy["conditions"]
    assert {"key": f"uploads/{rid}"} in policy["conditions"]
    assert clients.store().get(rid).status is Status.PENDING_UPLOAD


def test_without_a_size_the_range_is_the_configured_maximum(aws):
    fields = _create()["upload"]["fields"]
    policy = _policy(fields)
    assert ["content-length-range", 1, aws.max_upload_bytes] in policy["conditions"]


def test_a_declared_size_over_the_limit_is_refused_before_anything_exists(aws):
    # Given a size one byte over the configured limit (which would otherwise be bound into the policy)
    status, headers, payload = call(
        "POST", "/requests", {"email": "a@example.com", "content_type": "image/png", "size": aws.max_upload_bytes + 1}
    )
    # Then 413 says the limit, and no record, upload slot or quota count was made
    assert status == 413
    assert payload["error"]["code"] == "UPLOAD_TOO_LARGE"
    assert payload["error"]["details"] == {"max_bytes": aws.max_upload_bytes}
    assert str(aws.max_upload_bytes) in payload["error"]["message"]
    assert headers["cache-control"] == "no-store"
    assert clients.dynamodb().scan(TableName=aws.table_name)["Count"] == 0
    # And exactly the limit is fine
    limit = aws.max_upload_bytes
    assert ["content-length-range", limit, limit] in _policy(_create(size=limit)["upload"]["fields"])["conditions"]


def test_the_page_carries_this_stacks_upload_limit(aws, monkeypatch):
    monkeypatch.setattr(api, "settings", lambda: aws.model_copy(update={"max_upload_bytes": 5 * 2**20}))
    status, headers, html = call("GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert '<meta name="max-upload-bytes" content="5242880">' in html
    assert "20971520" not in html


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"email": "not-an-email", "content_type": "image/jpeg"}, "email"),
        ({"email": "a@example.com", "content_type": "application/pdf"}, "content_type"),
        ({"email": "a@example.com", "content_type": "image/png", "size": -1}, "size"),
        ({"email": "a@example.com", "content_type": "image/png", "key": "../../etc"}, "key"),
        ("{not json", None),
    ],
)
def test_bad_bodies_get_a_clear_error_and_create_nothing(aws, body, where):
    status, _, payload = call("POST", "/requests", body)
    assert status == 422
    assert payload["error"]["code"] == "VALIDATION_ERROR"
    if where:
        assert any(where in d["loc"] for d in payload["error"]["details"])
    assert "not-an-email" not in json.dumps(payload["error"]["details"])  # values are not echoed
    assert clients.dynamodb().scan(TableName=aws.table_name)["Count"] == 0


def test_status_masks_the_email_and_says_no_result_yet(aws):
    rid = _create()["id"]
    status, headers, body = call("GET", f"/requests/{rid}")
    assert status == 200
    assert headers["cache-control"] == "no-store"
    assert body["email"] == "j***@e***.com"
    assert "jane" not in json.dumps(body)
    assert body["status"] == "PENDING_UPLOAD" and "result" not in body


def test_completed_request_shows_a_fresh_result_link_and_redirects(aws):
    rid = _create()["id"]
    store = clients.store()
    store.claim(rid, from_status=Status.PENDING_UPLOAD, working=Status.CAPTIONING, lease_seconds=60)
    store.advance(rid, from_status=Status.CAPTIONING, to=Status.CAPTIONED, caption="A cup.")
    store.claim(rid, from_status=Status.CAPTIONED, working=Status.GENERATING, lease_seconds=60)
    store.advance(rid, from_status=Status.GENERATING, to=Status.COMPLETED, result_key=f"results/{rid}.png")

    status, _, body = call("GET", f"/requests/{rid}")
    assert status == 200 and body["status"] == "COMPLETED" and body["caption"] == "A cup."
    assert f"results/{rid}.png" in body["result"]["url"] and "Signature" in body["result"]["url"]
    status, headers, _ = call("GET", f"/requests/{rid}/result")
    assert status == 302 and f"results/{rid}.png" in headers["location"]


def test_status_names_the_models_that_did_each_step(aws):
    rid = _create()["id"]
    store = clients.store()
    store.claim(rid, from_status=Status.PENDING_UPLOAD, working=Status.CAPTIONING, lease_seconds=60)
    store.advance(
        rid,
        from_status=Status.CAPTIONING,
        to=Status.CAPTIONED,
        caption="A cup.",
        caption_provider="huggingface",
        caption_model="Qwen/Qwen3-VL-8B-Instruct",
    )
    store.claim(rid, from_status=Status.CAPTIONED, working=Status.GENERATING, lease_seconds=60)
    store.advance(
        rid,
        from_status=Status.GENERATING,
        to=Status.COMPLETED,
        result_key=f"results/{rid}.png",
        image_model="black-forest-labs/FLUX.1-schnell",
    )

    _, _, body = call("GET", f"/requests/{rid}")

    assert (body["caption_provider"], body["caption_model"], body["image_model"]) == (
        "huggingface",
        "Qwen/Qwen3-VL-8B-Instruct",
        "black-forest-labs/FLUX.1-schnell",
    )


def test_result_before_completion_is_a_conflict(aws):
    rid = _create()["id"]
    status, _, body = call("GET", f"/requests/{rid}/result")
    assert status == 409
    assert body["error"]["code"] == "RESULT_NOT_READY"


@pytest.mark.parametrize("rid", ["3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f", "nope", "..%2F..%2Fetc"])
def test_unknown_ids_are_404(aws, rid):
    for path in (f"/requests/{rid}", f"/requests/{rid}/result"):
        status, _, body = call("GET", path)
        assert status == 404 and body["error"]["code"] == "NOT_FOUND"


def test_unknown_route_is_404_in_the_error_shape(aws):
    status, _, body = call("GET", "/nowhere")
    assert status == 404 and body["error"]["code"] == "ROUTE_NOT_FOUND"


def test_openapi_document_describes_every_route_with_models(aws):
    status, _, doc = call("GET", "/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert set(paths) == {
        "/requests",
        "/requests/{request_id}",
        "/requests/{request_id}/result",
        "/confirm/{token}",
        "/unsubscribe/{token}",
        "/styles",
    }
    create = paths["/requests"]["post"]
    assert create["summary"] and "201" in create["responses"] and "422" in create["responses"]
    assert "CreateRequestBody" in json.dumps(create["requestBody"])
    schemas = doc["components"]["schemas"]
    assert {"CreateRequestBody", "CreateRequestResponse", "RequestView", "ErrorBody"} <= set(schemas)
