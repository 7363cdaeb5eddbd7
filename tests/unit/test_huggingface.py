from __future__ import annotations

import base64
import io
import json
import logging
from email.utils import format_datetime

import pytest
import requests
import responses
from PIL import Image

from reimagine.config import Settings
from reimagine.errors import ProviderError
from reimagine.providers import huggingface as hf
from tests.fixtures import images
from tests.fixtures.provider_fakes import IMAGE, FakeClock

BASE = "https://router.huggingface.co"
CHAT_URL = f"{BASE}/v1/chat/completions"
CAPTION_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
BLIP_URL = f"{BASE}/hf-inference/models/Salesforce/blip-image-captioning-large"
IMAGE_URL = f"{BASE}/hf-inference/models/black-forest-labs/FLUX.1-schnell"
TOKEN = "hf_TopSecretTokenValue123"


def make_client(clock: FakeClock, token_calls: list[int] | None = None, jitter: float = 0.0):
    def token() -> str:
        if token_calls is not None:
            token_calls.append(1)
        return TOKEN

    return hf.HuggingFaceClient(base_url=BASE, token=token, sleep=clock.sleep, rand=lambda: jitter)


def captioner(clock: FakeClock, route: str = "chat") -> hf.HuggingFaceCaptioner:
    model = CAPTION_MODEL if route == "chat" else "Salesforce/blip-image-captioning-large"
    return hf.HuggingFaceCaptioner(make_client(clock), model=model, route=route)


def generator(clock: FakeClock) -> hf.HuggingFaceGenerator:
    return hf.HuggingFaceGenerator(make_client(clock), model="black-forest-labs/FLUX.1-schnell", size=512)


def chat_answer(content: object) -> dict:
    """The shape of an OpenAI-compatible chat completion as the router returns it."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": CAPTION_MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 90, "completion_tokens": 20, "total_tokens": 110},
    }


def png_bytes(size: tuple[int, int] = (16, 16)) -> bytes:
    return images.png(size)


# --- success -------------------------------------------------------------------------------------


@responses.activate
def test_chat_caption_sends_the_image_inline_and_reads_the_message() -> None:
    responses.post(CHAT_URL, json=chat_answer("  A red kite over\n a green field.  "))
    clock = FakeClock(60)

    caption = captioner(clock).caption(IMAGE, clock.deadline)

    assert caption == "A red kite over a green field."
    request = responses.calls[0].request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    body = json.loads(request.body)
    assert body["model"] == CAPTION_MODEL
    text_part, image_part = body["messages"][0]["content"]
    assert body["messages"][0]["role"] == "user"
    assert text_part["type"] == "text" and "one sentence" in text_part["text"]
    assert image_part["type"] == "image_url"
    prefix = "data:image/jpeg;base64,"
    assert image_part["image_url"]["url"].startswith(prefix)
    assert base64.b64decode(image_part["image_url"]["url"][len(prefix) :]) == IMAGE.data
    assert clock.sleeps == []


@responses.activate
def test_chat_content_parts_are_joined() -> None:
    responses.post(CHAT_URL, json=chat_answer([{"type": "text", "text": "A quiet harbour at dusk."}]))
    clock = FakeClock(60)
    assert captioner(clock).caption(IMAGE, clock.deadline) == "A quiet harbour at dusk."


@responses.activate
def test_image_to_text_route_posts_raw_bytes() -> None:
    responses.post(BLIP_URL, json=[{"generated_text": "a dog sitting on a couch"}])
    clock = FakeClock(60)

    caption = captioner(clock, route="image-to-text").caption(IMAGE, clock.deadline)

    assert caption == "a dog sitting on a couch"
    request = responses.calls[0].request
    assert request.body == IMAGE.data
    assert request.headers["Content-Type"] == "image/jpeg"


@responses.activate
def test_text_to_image_returns_a_png_from_whatever_image_came_back() -> None:
    responses.post(IMAGE_URL, body=images.jpeg((64, 64)), content_type="image/jpeg")
    clock = FakeClock(60)

    data = generator(clock).generate("a lighthouse in a storm", clock.deadline)

    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.size == (64, 64)
    body = json.loads(responses.calls[0].request.body)
    assert body == {"inputs": "a lighthouse in a storm", "parameters": {"width": 512, "height": 512}}


# --- retries -------------------------------------------------------------------------------------


@responses.activate
def test_model_loading_503_waits_the_estimated_time() -> None:
    responses.post(
        IMAGE_URL,
        status=503,
        json={"error": "Model black-forest-labs/FLUX.1-schnell is currently loading", "estimated_time": 12.5},
    )
    responses.post(IMAGE_URL, body=png_bytes(), content_type="image/png")
    clock = FakeClock(60)

    generator(clock).generate("a prompt", clock.deadline)

    assert len(responses.calls) == 2
    assert clock.sleeps == [12.5]


@responses.activate
def test_429_honours_retry_after_seconds() -> None:
    responses.post(CHAT_URL, status=429, json={"error": "rate limited"}, headers={"Retry-After": "7"})
    responses.post(CHAT_URL, json=chat_answer("A cat."))
    clock = FakeClock(60)

    assert captioner(clock).caption(IMAGE, clock.deadline) == "A cat."
    assert clock.sleeps == [7.0]


@responses.activate
def test_429_honours_retry_after_as_a_date(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    monkeypatch.setattr(hf.time, "time", lambda: now.timestamp())
    later = format_datetime(now.replace(second=9), usegmt=True)
    responses.post(CHAT_URL, status=429, headers={"Retry-After": later})
    responses.post(CHAT_URL, json=chat_answer("A cat."))
    clock = FakeClock(60)

    captioner(clock).caption(IMAGE, clock.deadline)
    assert clock.sleeps == [9.0]


@responses.activate
def test_5xx_and_timeouts_are_retried_with_growing_jittered_backoff() -> None:
    responses.post(CHAT_URL, status=500, json={"error": "internal"})
    responses.post(CHAT_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    responses.post(CHAT_URL, status=502, body="Bad Gateway", content_type="text/plain")
    responses.post(CHAT_URL, json=chat_answer("A bridge."))
    clock = FakeClock(60)
    client = make_client(clock, jitter=1.0)  # the top of each jitter window

    caption = hf.HuggingFaceCaptioner(client, model=CAPTION_MODEL).caption(IMAGE, clock.deadline)

    assert caption == "A bridge."
    assert len(responses.calls) == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]


@responses.activate
def test_connection_errors_are_retried() -> None:
    responses.post(CHAT_URL, body=requests.exceptions.ConnectionError("reset"))
    responses.post(CHAT_URL, json=chat_answer("A tree."))
    clock = FakeClock(60)
    assert captioner(clock).caption(IMAGE, clock.deadline) == "A tree."
    assert len(responses.calls) == 2


@responses.activate
def test_attempts_are_bounded() -> None:
    responses.post(CHAT_URL, status=503, json={"error": "overloaded"})
    clock = FakeClock(600)

    with pytest.raises(ProviderError) as caught:
        captioner(clock).caption(IMAGE, clock.deadline)

    assert caught.value.code == "PROVIDER_UNAVAILABLE" and caught.value.retryable
    assert len(responses.calls) == hf.RetryPolicy().max_attempts
    assert len(clock.sleeps) == hf.RetryPolicy().max_attempts - 1


@responses.activate
def test_a_wait_longer_than_the_budget_ends_at_once_as_timeout() -> None:
    responses.post(IMAGE_URL, status=503, json={"error": "loading", "estimated_time": 20.0})
    clock = FakeClock(15)

    with pytest.raises(ProviderError) as caught:
        generator(clock).generate("a prompt", clock.deadline)

    assert caught.value.code == "PROVIDER_TIMEOUT" and caught.value.retryable
    assert len(responses.calls) == 1
    assert clock.sleeps == []  # no pointless sleep into the end of the invocation


@responses.activate
def test_no_attempt_starts_without_time_for_it() -> None:
    responses.post(CHAT_URL, json=chat_answer("never"))
    clock = FakeClock(1.5)

    with pytest.raises(ProviderError) as caught:
        captioner(clock).caption(IMAGE, clock.deadline)

    assert caught.value.code == "PROVIDER_TIMEOUT"
    assert len(responses.calls) == 0


@responses.activate
def test_read_timeout_never_exceeds_the_remaining_budget() -> None:
    responses.post(CHAT_URL, json=chat_answer("A road."))
    clock = FakeClock(10)
    captioner(clock).caption(IMAGE, clock.deadline)
    connect, read = responses.calls[0].request.req_kwargs["timeout"]
    assert connect + read <= 10


# --- refusals and wrong answers ------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
@responses.activate
def test_client_errors_are_rejected_without_retry(status: int) -> None:
    responses.post(CHAT_URL, status=status, json={"error": f"nope {status}"})
    clock = FakeClock(60)

    with pytest.raises(ProviderError) as caught:
        captioner(clock).caption(IMAGE, clock.deadline)

    assert caught.value.code == "PROVIDER_REJECTED" and not caught.value.retryable
    assert str(status) in str(caught.value) and f"nope {status}" in str(caught.value)
    assert len(responses.calls) == 1


@pytest.mark.parametrize(
    "answer",
    [
        {"body": json.dumps({"error": "something"}), "content_type": "application/json"},
        {"body": b"\x89PNG\r\n\x1a\n garbage", "content_type": "image/png"},
        {"body": b"", "content_type": "image/png"},
        {"body": images.truncated_png(), "content_type": "image/png"},
    ],
)
@responses.activate
def test_generation_that_is_not_an_image_is_a_bad_response(answer: dict) -> None:
    responses.post(IMAGE_URL, **answer)
    clock = FakeClock(60)

    with pytest.raises(ProviderError) as caught:
        generator(clock).generate("a prompt", clock.deadline)

    assert caught.value.code == "PROVIDER_BAD_RESPONSE"


@pytest.mark.parametrize(
    "payload", [chat_answer("   "), chat_answer(None), {"choices": []}, {"object": "error"}, ["unexpected"]]
)
@responses.activate
def test_chat_without_a_caption_is_a_bad_response(payload: object) -> None:
    responses.post(CHAT_URL, json=payload)
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        captioner(clock).caption(IMAGE, clock.deadline)
    assert caught.value.code == "PROVIDER_BAD_RESPONSE"


@pytest.mark.parametrize("payload", [[], [{"label": "x"}], {"error": "x"}, [{"generated_text": ""}]])
@responses.activate
def test_image_to_text_without_text_is_a_bad_response(payload: object) -> None:
    responses.post(BLIP_URL, json=payload)
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        captioner(clock, route="image-to-text").caption(IMAGE, clock.deadline)
    assert caught.value.code == "PROVIDER_BAD_RESPONSE"


@responses.activate
def test_non_json_caption_answer_is_a_bad_response() -> None:
    responses.post(CHAT_URL, body="<html>oops</html>", content_type="text/html")
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        captioner(clock).caption(IMAGE, clock.deadline)
    assert caught.value.code == "PROVIDER_BAD_RESPONSE"


# --- the token -----------------------------------------------------------------------------------


@responses.activate
def test_token_is_fetched_lazily_and_never_logged_or_raised(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    responses.post(CHAT_URL, status=503, json={"error": f"busy, token {TOKEN} seen"})
    responses.post(CHAT_URL, status=401, json={"error": f"Invalid credentials in header: Bearer {TOKEN}"})
    clock = FakeClock(60)
    calls: list[int] = []
    client = make_client(clock, token_calls=calls)
    assert calls == []  # nothing fetched at construction (cold start stays cheap)

    with pytest.raises(ProviderError) as caught:
        hf.HuggingFaceCaptioner(client, model=CAPTION_MODEL).caption(IMAGE, clock.deadline)

    assert calls, "the token is fetched at first use"
    assert caught.value.code == "PROVIDER_REJECTED"
    assert "***" in str(caught.value)
    captured = capsys.readouterr()
    for text in (str(caught.value), repr(caught.value), caplog.text, captured.out, captured.err):
        assert TOKEN not in text
    assert any("retried" in record.getMessage() for record in caplog.records)


def test_token_comes_from_parameter_store(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from aws_lambda_powertools.utilities import parameters
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    parameters.clear_caches()
    with mock_aws():
        boto3.client("ssm").put_parameter(Name="/reimagine/hf", Value=TOKEN, Type="SecureString")
        assert hf.ssm_token("/reimagine/hf")() == TOKEN
        with pytest.raises(ProviderError) as caught:
            hf.ssm_token("/reimagine/missing")()
    parameters.clear_caches()
    assert caught.value.code == "PROVIDER_UNAVAILABLE"


def test_session_retries_only_failed_connections() -> None:
    retries = hf.make_session().get_adapter("https://router.huggingface.co").max_retries
    assert retries.connect == 2
    assert retries.read == 0 and retries.status == 0


def test_builders_follow_settings() -> None:
    settings = Settings(provider="huggingface", hf_caption_route="image-to-text", result_size=640)
    cap = hf.build_captioner(settings)
    gen = hf.build_generator(settings)
    assert cap.route == "image-to-text" and cap.model == settings.hf_caption_model
    assert gen.size == 640 and gen.model == settings.hf_image_model
    assert cap.name == gen.name == "huggingface"
