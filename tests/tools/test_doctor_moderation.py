"""`reimagine doctor` checks the configured moderator: the offline model loads (and says what it
catches), the OpenAI-compatible moderation endpoint answers, Rekognition and Comprehend answer, and
a stack with no moderation is warned about."""

from __future__ import annotations

import boto3
import pytest
import responses
from botocore.stub import Stubber

from reimagine_tools.doctor import FAIL, OK, SKIPPED, WARN, Configuration, Doctor
from tests.fixtures.moderation_standin import ModerationStandin, moderation_answer, moderation_result

BASE = "https://api.openai.example"


def _config(**env: str) -> Configuration:
    both = {"PROVIDER": "offline", **env}
    return Configuration(caption=both, generate=both, notify={"SENDER_EMAIL": "r@example.com"}, source="test")


def _moderation(doctor: Doctor) -> list[tuple[str, str]]:
    from reimagine_tools.doctor_moderation import moderation_checks

    return [(c.status, c.detail) for c in moderation_checks(doctor)]


def test_no_moderation_is_a_warning() -> None:
    ((status, detail),) = _moderation(Doctor(_config(MODERATION="none"), aws=None, environ={}))
    assert (status, "public stack" in detail) == (WARN, True)


def test_the_offline_model_loads_and_says_it_catches_nudity_only() -> None:
    ((status, detail),) = _moderation(Doctor(_config(MODERATION="offline"), aws=None, environ={}))
    assert (status, "nudity" in detail, "not violence or hate" in detail) == (OK, True, True)


def test_the_openai_moderation_endpoint_answering_is_ok() -> None:
    with ModerationStandin() as standin:
        checks = _moderation(Doctor(_config(MODERATION="openai", OPENAI_BASE_URL=standin.url), aws=None, environ={}))
    assert [status for status, _ in checks] == [OK]


@responses.activate
def test_an_openai_endpoint_without_moderations_fails() -> None:
    # Given a server (Ollama, say) that has no /v1/moderations
    responses.post(f"{BASE}/v1/moderations", status=404, json={"error": "not found"})
    # When the doctor checks it
    ((status, detail),) = _moderation(Doctor(_config(MODERATION="openai", OPENAI_BASE_URL=BASE), aws=None, environ={}))
    # Then it fails, naming the endpoint
    assert (status, f"{BASE}/v1/moderations" in detail) == (FAIL, True)


@responses.activate
def test_an_openai_moderation_answer_is_read_in_the_sdks_shape() -> None:
    responses.post(f"{BASE}/v1/moderations", json=moderation_answer(moderation_result("image")))
    checks = _moderation(Doctor(_config(MODERATION="openai", OPENAI_BASE_URL=BASE), aws=None, environ={}))
    assert [status for status, _ in checks] == [OK]


def test_rekognition_without_aws_is_skipped() -> None:
    ((status, _),) = _moderation(Doctor(_config(MODERATION="rekognition"), aws=None, environ={}))
    assert status == SKIPPED


@pytest.fixture
def stubbed():
    rekognition = boto3.client("rekognition", region_name="us-east-1")
    comprehend = boto3.client("comprehend", region_name="us-east-1")
    with Stubber(rekognition) as rek, Stubber(comprehend) as comp:
        clients = {"rekognition": rekognition, "comprehend": comprehend}
        yield (lambda service, region="": clients[service]), rek, comp


def test_rekognition_and_comprehend_answering_are_ok(stubbed) -> None:
    aws, rek, comp = stubbed
    rek.add_response("detect_moderation_labels", {"ModerationLabels": []})
    comp.add_response("detect_toxic_content", {"ResultList": [{"Toxicity": 0.01, "Labels": []}]})
    checks = _moderation(Doctor(_config(MODERATION="rekognition"), aws=aws, environ={}))
    assert [status for status, _ in checks] == [OK, OK]


def test_comprehend_refusing_names_the_regions_that_offer_it(stubbed) -> None:
    aws, rek, comp = stubbed
    rek.add_response("detect_moderation_labels", {"ModerationLabels": []})
    comp.add_client_error("detect_toxic_content", "UnrecognizedClientException", http_status_code=400)
    checks = _moderation(Doctor(_config(MODERATION="rekognition"), aws=aws, environ={}))
    assert (checks[1][0], "us-east-1" in checks[1][1]) == (FAIL, True)
