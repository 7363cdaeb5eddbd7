"""Hostile input for the HTTP API: schemathesis generates requests from the API's own OpenAPI document.

The document is the one the ApiFunction generates (what `GET /openapi.json` serves); the requests go
to the local stack's HTTP server on a free 127.0.0.1 port (moto behind it), so each one passes through
the same routing, event shape and handler as on a deployed API. Examples are bounded and
derandomized: the run takes seconds and fails the same way twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from reimagine.handlers.api import app
from reimagine_emulator.runner import StackConfig, running_stack

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Loaded at collection (schemathesis parametrizes from it); served_document checks the server agrees.
DOCUMENT = json.loads(app.get_openapi_json_schema(title="reimagine", version="1.0.0"))
# The coverage phase also tries methods no route has, TRACE included: the local gateway answers
# them all as HttpApi does (404).
CONFIG = SchemathesisConfig.from_dict(
    {"phases": {"coverage": {"unexpected-methods": ["get", "put", "post", "delete", "options", "patch", "trace"]}}}
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
# The stage's throttling raised: the fuzz judges the function's answers, and the gateway's 429 past
# ThrottlingRateLimit (not the function's, and not in its document) is covered in test_api_events.py.
UNTHROTTLED = StackConfig(parameters={"ThrottlingBurstLimit": "5000", "ThrottlingRateLimit": "10000"})


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    # running_stack quietens Powertools through the environment; keep that to this module.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
        with running_stack(port=0, config=UNTHROTTLED) as running:
            yield running.api_url


def test_the_fuzzed_document_is_the_one_the_api_serves(api_url: str) -> None:
    served = requests.get(f"{api_url}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == DOCUMENT
    assert {"/requests", "/requests/{request_id}", "/requests/{request_id}/result"} <= set(DOCUMENT["paths"])


@schema.parametrize()
@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(
    case: schemathesis.Case, api_url: str
) -> None:
    case.call_and_validate(base_url=api_url, checks=CHECKS)


# What schemathesis found, pinned as plain cases: bodies the API cannot parse are the client's fault.
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b'{"email": "a@example.com", "content_type": "image/png"}'),  # no boundary
        ("application/json", b"\xff\xfe{"),  # not UTF-8
    ],
    ids=["multipart-without-boundary", "json-not-utf8"],
)
def test_an_unparseable_body_is_a_client_error(api_url: str, content_type: str, body: bytes) -> None:
    response = requests.post(f"{api_url}/requests", data=body, headers={"Content-Type": content_type}, timeout=10)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
