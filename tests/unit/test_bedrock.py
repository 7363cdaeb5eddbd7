from __future__ import annotations

import base64
import io
import json

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from PIL import Image

from reimagine.config import Settings
from reimagine.errors import ProviderError
from reimagine.providers import bedrock
from tests.fixtures import images
from tests.fixtures.provider_fakes import IMAGE, FakeClock

CAPTION_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
IMAGE_MODEL = "amazon.titan-image-generator-v2:0"


@pytest.fixture
def client():
    runtime = boto3.client("bedrock-runtime", region_name="us-east-1", config=bedrock.CLIENT_CONFIG)
    with Stubber(runtime) as stubber:
        runtime.stubber = stubber  # handy in tests
        yield runtime
        stubber.assert_no_pending_responses()


def converse_answer(*texts: str) -> dict:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": t} for t in texts]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 120, "outputTokens": 20, "totalTokens": 140},
        "metrics": {"latencyMs": 800},
    }


def titan_answer(payload: dict | bytes) -> dict:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {"body": StreamingBody(io.BytesIO(raw), len(raw)), "contentType": "application/json"}


def captioner(client, clock: FakeClock) -> bedrock.BedrockCaptioner:
    return bedrock.BedrockCaptioner(client, model=CAPTION_MODEL, sleep=clock.sleep, rand=lambda: 1.0)


def generator(client, clock: FakeClock, size: int = 768) -> bedrock.BedrockGenerator:
    return bedrock.BedrockGenerator(client, model=IMAGE_MODEL, size=size, sleep=clock.sleep, rand=lambda: 1.0)


# --- success -------------------------------------------------------------------------------------


def test_caption_through_converse_with_an_image_block(client) -> None:
    expected = {
        "modelId": CAPTION_MODEL,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"image": {"format": "jpeg", "source": {"bytes": IMAGE.data}}},
                    {"text": bedrock.CAPTION_INSTRUCTION},
                ],
            }
        ],
        "inferenceConfig": {"maxTokens": 120, "temperature": 0.2},
    }
    client.stubber.add_response("converse", converse_answer("A red door", " in a white wall."), expected)
    clock = FakeClock(60)

    assert captioner(client, clock).caption(IMAGE, clock.deadline) == "A red door in a white wall."
    assert clock.sleeps == []


def test_picture_through_titan_v2(client) -> None:
    gen = generator(client, FakeClock(60))
    body = gen.request_body("a lighthouse")
    assert body["taskType"] == "TEXT_IMAGE"
    assert body["textToImageParams"] == {"text": "a lighthouse"}
    config = body["imageGenerationConfig"]
    assert config["numberOfImages"] == 1 and config["width"] == config["height"] == 768
    assert 0 <= config["seed"] <= 2_147_483_646 and "cfgScale" in config
    assert gen.request_body("a lighthouse") == body  # stable seed for a redelivered event

    png = base64.b64encode(images.png((64, 64))).decode()
    client.stubber.add_response(
        "invoke_model",
        titan_answer({"images": [png], "error": None}),
        {
            "modelId": IMAGE_MODEL,
            "body": json.dumps(body),
            "contentType": "application/json",
            "accept": "application/json",
        },
    )
    clock = FakeClock(60)
    data = gen.generate("a lighthouse", clock.deadline)
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.size == (64, 64)


@pytest.mark.parametrize(("asked", "sent"), [(200, 512), (700, 768), (768, 768), (1000, 1024), (2048, 1024)])
def test_size_snaps_to_a_titan_square(asked: int, sent: int) -> None:
    assert bedrock.BedrockGenerator(object(), model=IMAGE_MODEL, size=asked).size == sent


# --- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 429),
        ("ServiceUnavailableException", 503),
        ("ModelNotReadyException", 429),
        ("ModelTimeoutException", 408),
    ],
)
def test_transient_errors_are_retried_with_backoff(client, code: str, status: int) -> None:
    client.stubber.add_client_error("converse", service_error_code=code, http_status_code=status)
    client.stubber.add_client_error("converse", service_error_code=code, http_status_code=status)
    client.stubber.add_response(
        "converse", converse_answer("A boat."), {"modelId": ANY, "messages": ANY, "inferenceConfig": ANY}
    )
    clock = FakeClock(60)

    assert captioner(client, clock).caption(IMAGE, clock.deadline) == "A boat."
    assert clock.sleeps == [0.5, 1.0]


def test_retries_are_bounded(client) -> None:
    attempts = bedrock.RetryPolicy().max_attempts
    for _ in range(attempts):
        client.stubber.add_client_error("invoke_model", service_error_code="ThrottlingException", http_status_code=429)
    clock = FakeClock(600)

    with pytest.raises(ProviderError) as caught:
        generator(client, clock).generate("a prompt", clock.deadline)

    assert caught.value.code == "PROVIDER_UNAVAILABLE" and caught.value.retryable
    assert len(clock.sleeps) == attempts - 1


def test_budget_is_respected(client) -> None:
    client.stubber.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
    clock = FakeClock(3.2)  # one attempt fits; a backoff of 0.5 s would leave too little for another

    with pytest.raises(ProviderError) as caught:
        captioner(client, clock).caption(IMAGE, clock.deadline)

    assert caught.value.code == "PROVIDER_TIMEOUT" and caught.value.retryable
    assert clock.sleeps == []


def test_read_timeouts_are_retried() -> None:
    class TimesOutOnce:
        calls = 0

        def converse(self, **kwargs):
            self.calls += 1
            if self.calls == 1:
                raise ReadTimeoutError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com")
            return converse_answer("A hill.")

    fake = TimesOutOnce()
    clock = FakeClock(60)
    assert captioner(fake, clock).caption(IMAGE, clock.deadline) == "A hill."
    assert fake.calls == 2


# --- refusals and wrong answers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [("ValidationException", 400), ("AccessDeniedException", 403), ("ResourceNotFoundException", 404)],
)
def test_requests_retrying_cannot_fix_are_rejected_at_once(client, code: str, status: int) -> None:
    client.stubber.add_client_error(
        "converse", service_error_code=code, service_message="no such model", http_status_code=status
    )
    clock = FakeClock(60)

    with pytest.raises(ProviderError) as caught:
        captioner(client, clock).caption(IMAGE, clock.deadline)

    assert caught.value.code == "PROVIDER_REJECTED" and not caught.value.retryable
    assert code in str(caught.value)
    assert clock.sleeps == []


def test_titan_error_field_is_a_rejection(client) -> None:
    client.stubber.add_response(
        "invoke_model",
        titan_answer({"images": [], "error": "This request has been blocked by our content filters."}),
    )
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        generator(client, clock).generate("a prompt", clock.deadline)
    assert caught.value.code == "PROVIDER_REJECTED"
    assert "content filters" in str(caught.value)


@pytest.mark.parametrize(
    "payload",
    [
        {"images": []},
        {"images": ["not base64!"]},
        {"images": [base64.b64encode(b"definitely not a picture").decode()]},
        {"images": [base64.b64encode(images.truncated_png()).decode()]},
        b"not json",
        b"[1, 2]",
    ],
)
def test_titan_answer_without_a_usable_picture_is_a_bad_response(client, payload) -> None:
    client.stubber.add_response("invoke_model", titan_answer(payload))
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        generator(client, clock).generate("a prompt", clock.deadline)
    assert caught.value.code == "PROVIDER_BAD_RESPONSE"


def test_empty_caption_is_a_bad_response(client) -> None:
    client.stubber.add_response("converse", converse_answer("   "))
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        captioner(client, clock).caption(IMAGE, clock.deadline)
    assert caught.value.code == "PROVIDER_BAD_RESPONSE"


# --- construction --------------------------------------------------------------------------------


def test_client_is_built_once_with_timeouts_and_standard_retries() -> None:
    bedrock.runtime_client.cache_clear()
    first = bedrock.runtime_client("us-east-1")
    assert bedrock.runtime_client("us-east-1") is first
    config = first.meta.config
    assert config.connect_timeout == 5 and config.read_timeout == 60
    assert config.retries["mode"] == "standard"
    bedrock.runtime_client.cache_clear()


def test_builders_follow_settings() -> None:
    bedrock.runtime_client.cache_clear()
    settings = Settings(provider="bedrock", result_size=1024)
    cap = bedrock.build_captioner(settings)
    gen = bedrock.build_generator(settings)
    assert cap.model == settings.bedrock_caption_model and gen.model == settings.bedrock_image_model
    assert gen.size == 1024 and cap.name == gen.name == "bedrock"
    bedrock.runtime_client.cache_clear()
