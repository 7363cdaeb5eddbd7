"""The OpenAI-compatible provider against fakes of the documented API (OpenAI's reference; Ollama,
vLLM and LM Studio answer the same shapes), from tests/fixtures/provider_answers.py."""

from __future__ import annotations

import base64
import io
import json

import pytest
import responses
from PIL import Image

from reimagine.config import Settings
from reimagine.errors import ModelUnavailable, ProviderError
from reimagine.providers import http
from reimagine.providers import openai as oa
from reimagine.providers.chain import CaptionChain, PictureChain
from tests.fixtures import images
from tests.fixtures import provider_answers as answers
from tests.fixtures.provider_fakes import IMAGE, FakeClock

OPENAI = "https://api.openai.example"
OLLAMA = "http://localhost:11434"
KEY = "sk-TopSecretKeyValue"


def client(clock: FakeClock, key: str | None = KEY) -> http.HttpClient:
    return http.HttpClient(token=(lambda: key) if key else None, sleep=clock.sleep, rand=lambda: 0.0)


def sent_json(index: int = 0) -> dict:
    return json.loads(responses.calls[index].request.body)


@responses.activate
def test_a_caption_is_a_chat_completion_with_the_image_as_a_data_url() -> None:
    responses.post(f"{OPENAI}/v1/chat/completions", json=answers.chat_completion("A cat on a mat."))
    clock = FakeClock(60)

    caption = oa.OpenAiCaptioner(client(clock), base_url=OPENAI, model="gpt-4.1-mini").caption(IMAGE, clock.deadline)

    text_part, image_part = sent_json()["messages"][0]["content"]
    assert (caption, sent_json()["model"], text_part["type"], responses.calls[0].request.headers["Authorization"]) == (
        "A cat on a mat.",
        "gpt-4.1-mini",
        "text",
        f"Bearer {KEY}",
    )
    assert image_part == {
        "type": "image_url",
        "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(IMAGE.data).decode()},
    }


@responses.activate
def test_a_server_without_a_key_gets_no_authorization_header() -> None:
    # Ollama's OpenAI-compatible endpoint, given with its /v1 as its docs do
    responses.post(f"{OLLAMA}/v1/chat/completions", json=answers.chat_completion("A dog."))
    clock = FakeClock(60)
    oa.OpenAiCaptioner(client(clock, key=None), base_url=f"{OLLAMA}/v1", model="llava").caption(IMAGE, clock.deadline)
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_a_picture_asks_for_b64_json_and_decodes_it() -> None:
    responses.post(f"{OLLAMA}/v1/images/generations", json=answers.openai_images(images.jpeg((24, 24))))
    clock = FakeClock(60)

    gen = oa.OpenAiGenerator(client(clock, key=None), base_url=OLLAMA, model="stable-diffusion", size=512)
    data = gen.generate("a lighthouse", clock.deadline)

    assert (sent_json(), Image.open(io.BytesIO(data)).format) == (
        {
            "model": "stable-diffusion",
            "prompt": "a lighthouse",
            "n": 1,
            "size": "512x512",
            "response_format": "b64_json",
        },
        "PNG",
    )


def test_gpt_image_models_get_a_supported_size_and_no_response_format() -> None:
    # gpt-image models always answer base64 and refuse response_format (OpenAI API reference)
    body = oa.OpenAiGenerator(client(FakeClock(1)), base_url=OPENAI, model="gpt-image-1").request_body("p")
    assert body == {"model": "gpt-image-1", "prompt": "p", "n": 1, "size": "1024x1024"}


@pytest.mark.parametrize(
    ("status", "payload"),
    [
        (404, answers.openai_model_not_found("gpt-4.1-mini")),
        (404, answers.ollama_model_not_found("llava")),
        (400, answers.openai_model_not_found("gpt-4.1-mini")),
    ],
    ids=["openai 404", "ollama 404", "openai 400 model_not_found"],
)
@responses.activate
def test_an_unknown_model_is_unavailable(status: int, payload: dict) -> None:
    responses.post(f"{OPENAI}/v1/chat/completions", status=status, json=payload)
    clock = FakeClock(60)
    with pytest.raises(ModelUnavailable):
        oa.OpenAiCaptioner(client(clock), base_url=OPENAI, model="gpt-4.1-mini").caption(IMAGE, clock.deadline)


@responses.activate
def test_a_rate_limit_waits_what_the_server_asks() -> None:
    url = f"{OPENAI}/v1/images/generations"
    responses.post(url, status=429, json={"error": {"message": "Rate limit reached"}}, headers={"Retry-After": "3"})
    responses.post(url, json=answers.openai_images(images.png((8, 8))))
    clock = FakeClock(60)
    oa.OpenAiGenerator(client(clock), base_url=OPENAI, model="dall-e-3").generate("p", clock.deadline)
    assert clock.sleeps == [3.0]


@pytest.mark.parametrize(
    "payload",
    [
        {"data": []},
        {"data": [{"url": "https://x/y.png"}]},
        {"data": [{"b64_json": None}]},
        {"data": [{"b64_json": "%%"}]},
    ],
    ids=["no data", "url only", "null", "bad base64"],
)
@responses.activate
def test_a_picture_answer_without_an_image_is_a_bad_response(payload: dict) -> None:
    responses.post(f"{OPENAI}/v1/images/generations", json=payload)
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        oa.OpenAiGenerator(client(clock), base_url=OPENAI, model="dall-e-3").generate("p", clock.deadline)
    assert caught.value.code == "PROVIDER_BAD_RESPONSE"


@responses.activate
def test_the_key_never_reaches_an_error() -> None:
    responses.post(
        f"{OPENAI}/v1/chat/completions", status=401, json={"error": {"message": f"Incorrect API key: {KEY}"}}
    )
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        oa.OpenAiCaptioner(client(clock), base_url=OPENAI, model="m").caption(IMAGE, clock.deadline)
    assert (caught.value.code, KEY in str(caught.value)) == ("PROVIDER_REJECTED", False)


def test_builders_make_chains_and_read_the_key_only_when_named() -> None:
    oa.shared_client.cache_clear()
    settings = Settings(provider="openai", openai_caption_models="llava,moondream", openai_image_models="sd")
    cap, gen = oa.build_captioner(settings), oa.build_generator(settings)
    assert isinstance(cap, CaptionChain) and isinstance(gen, PictureChain)
    assert ([c.model for c in cap.links], [g.model for g in gen.links], oa.shared_client("")._token) == (
        ["llava", "moondream"],
        ["sd"],
        None,
    )
    oa.shared_client.cache_clear()
