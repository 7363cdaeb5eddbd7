"""The Hugging Face provider against fakes of the Hub and the router, shaped as huggingface_hub's
InferenceClient builds its requests and parses their answers (tests/fixtures/provider_answers.py)."""

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
from reimagine.errors import ModelUnavailable, ProviderError
from reimagine.providers import hf_routing, http
from reimagine.providers import huggingface as hf
from reimagine.providers.chain import CaptionChain, PictureChain
from reimagine.providers.retry import RetryPolicy
from tests.fixtures import images
from tests.fixtures import provider_answers as answers
from tests.fixtures.provider_fakes import IMAGE, FakeClock

ROUTER = "https://router.example.test"
HUB = "https://hub.example.test"
CHAT_URL = f"{ROUTER}/v1/chat/completions"
VLM = "Qwen/Qwen3-VL-8B-Instruct"
FLUX = "black-forest-labs/FLUX.1-schnell"
FLUX_INFO = f"{HUB}/api/models/{FLUX}"
TOKEN = "hf_TopSecretTokenValue123"


def make_client(clock: FakeClock, token_calls: list[int] | None = None, jitter: float = 0.0) -> http.HttpClient:
    def token() -> str:
        if token_calls is not None:
            token_calls.append(1)
        return TOKEN

    return http.HttpClient(token=token, sleep=clock.sleep, rand=lambda: jitter)


def captioner(clock: FakeClock, model: str = VLM, **kwargs) -> hf.HuggingFaceCaptioner:
    return hf.HuggingFaceCaptioner(make_client(clock, **kwargs), router_url=ROUTER, model=model)


def generator(clock: FakeClock, model: str = FLUX) -> hf.HuggingFaceGenerator:
    return hf.HuggingFaceGenerator(make_client(clock), router_url=ROUTER, hub_url=HUB, model=model, size=512)


def serve(provider: str, provider_id: str = "flux-schnell-on-provider", *, form: str = "list") -> None:
    """The Hub maps FLUX to one live provider."""
    responses.get(FLUX_INFO, json=answers.hub_model_info(FLUX, [answers.mapping(provider, provider_id)], form=form))


def sent_json(index: int) -> dict:
    return json.loads(responses.calls[index].request.body)


# --- captions: chat completion through the router ------------------------------------------------


@responses.activate
def test_a_caption_is_a_chat_completion_with_the_image_inline() -> None:
    # Given the router answers a chat completion
    responses.post(CHAT_URL, json=answers.chat_completion("  A red kite over\n a green field.  "))
    clock = FakeClock(60)

    # When a photo is captioned
    caption = captioner(clock).caption(IMAGE, clock.deadline)

    # Then the request is the client's auto-router chat completion: the Hub model id, one user
    # message with the instruction and the image as a data URL; the answer's text is the caption
    request = responses.calls[0].request
    text_part, image_part = sent_json(0)["messages"][0]["content"]
    assert (caption, request.headers["Authorization"], next(iter(sent_json(0)))) == (
        "A red kite over a green field.",
        f"Bearer {TOKEN}",
        "model",
    )
    assert (sent_json(0)["model"], text_part["type"], image_part["type"]) == (VLM, "text", "image_url")
    assert image_part["image_url"]["url"] == "data:image/jpeg;base64," + base64.b64encode(IMAGE.data).decode()


@responses.activate
def test_content_parts_of_a_chat_answer_are_joined() -> None:
    responses.post(CHAT_URL, json=answers.chat_completion([{"type": "text", "text": "A quiet harbour at dusk."}]))
    clock = FakeClock(60)
    assert captioner(clock).caption(IMAGE, clock.deadline) == "A quiet harbour at dusk."


@pytest.mark.parametrize(
    "payload",
    [
        answers.chat_completion("   "),
        answers.chat_completion(None),
        answers.chat_completion(42),
        answers.chat_completion([{"type": "text", "text": 7}]),
        {"choices": []},
        ["unexpected"],
    ],
    ids=["blank", "null", "number", "non-string part", "no choices", "a list"],
)
@responses.activate
def test_a_chat_answer_without_caption_text_is_a_bad_response(payload: object) -> None:
    responses.post(CHAT_URL, json=payload)
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        captioner(clock).caption(IMAGE, clock.deadline)
    assert caught.value.code == "PROVIDER_BAD_RESPONSE"


@responses.activate
def test_the_router_not_serving_a_model_makes_it_unavailable() -> None:
    # Given the router says no enabled provider serves the model (400 model_not_supported)
    responses.post(CHAT_URL, status=400, json=answers.router_model_not_supported(VLM))
    clock = FakeClock(60)

    # When it is asked for a caption, Then the model is unavailable, after one call
    with pytest.raises(ModelUnavailable) as caught:
        captioner(clock).caption(IMAGE, clock.deadline)
    assert (caught.value.code, len(responses.calls)) == ("MODEL_UNAVAILABLE", 1)


@pytest.mark.parametrize("status", [404, 410])
@responses.activate
def test_a_gone_model_is_unavailable(status: int) -> None:
    responses.post(CHAT_URL, status=status, json={"error": f"Model {VLM} does not exist"})
    clock = FakeClock(60)
    with pytest.raises(ModelUnavailable):
        captioner(clock).caption(IMAGE, clock.deadline)


@pytest.mark.parametrize("status", [400, 401, 403, 413, 422])
@responses.activate
def test_other_client_errors_are_rejected_without_retry(status: int) -> None:
    responses.post(CHAT_URL, status=status, json={"error": f"nope {status}"})
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        captioner(clock).caption(IMAGE, clock.deadline)
    assert (caught.value.code, caught.value.retryable, len(responses.calls)) == ("PROVIDER_REJECTED", False, 1)


# --- pictures: the provider the Hub maps the model to ---------------------------------------------


@responses.activate
def test_nscale_pictures_are_openai_style_generations_with_b64_json() -> None:
    # Given the Hub maps FLUX to nscale, and nscale answers b64_json
    serve("nscale", "black-forest-labs/FLUX.1-schnell")
    route = f"{ROUTER}/nscale/v1/images/generations"
    responses.post(route, json=answers.openai_images(images.jpeg((64, 64))))
    clock = FakeClock(60)

    # When a picture is generated
    data = generator(clock).generate("a lighthouse in a storm", clock.deadline)

    # Then nscale's body is what NscaleTextToImageTask builds, and the picture comes back as PNG
    assert sent_json(1) == {
        "response_format": "b64_json",
        "prompt": "a lighthouse in a storm",
        "model": "black-forest-labs/FLUX.1-schnell",
        "size": "512x512",
    }
    assert (Image.open(io.BytesIO(data)).format, responses.calls[1].request.headers["Accept"]) == ("PNG", "image/png")


@responses.activate
def test_together_pictures_ask_for_base64_with_width_and_height() -> None:
    serve("together", "black-forest-labs/FLUX.1-schnell-Free")
    responses.post(f"{ROUTER}/together/v1/images/generations", json=answers.together_images(images.png((32, 32))))
    clock = FakeClock(60)

    data = generator(clock).generate("a fox", clock.deadline)

    assert sent_json(1) == {
        "prompt": "a fox",
        "response_format": "base64",
        "width": 512,
        "height": 512,
        "model": "black-forest-labs/FLUX.1-schnell-Free",
    }
    assert Image.open(io.BytesIO(data)).size == (32, 32)


@responses.activate
def test_hf_inference_pictures_post_inputs_and_get_raw_bytes() -> None:
    serve("hf-inference", FLUX, form="dict")  # the older dict form of the mapping
    responses.post(f"{ROUTER}/hf-inference/models/{FLUX}", body=images.jpeg((40, 40)), content_type="image/jpeg")
    clock = FakeClock(60)

    data = generator(clock).generate("a bridge", clock.deadline)

    assert sent_json(1) == {"inputs": "a bridge", "parameters": {"width": 512, "height": 512}}
    assert Image.open(io.BytesIO(data)).format == "PNG"


@responses.activate
def test_the_hub_is_asked_once_per_container_with_the_token() -> None:
    serve("nscale")
    route = f"{ROUTER}/nscale/v1/images/generations"
    responses.post(route, json=answers.openai_images(images.png((8, 8))))
    clock = FakeClock(60)
    gen = generator(clock)

    gen.generate("one", clock.deadline)
    gen.generate("two", clock.deadline)

    hub_calls = [c for c in responses.calls if c.request.url.startswith(HUB)]
    assert len(hub_calls) == 1
    assert hub_calls[0].request.url == f"{FLUX_INFO}?expand%5B%5D=inferenceProviderMapping"
    assert hub_calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


@responses.activate
def test_the_first_live_supported_provider_is_chosen_in_the_hubs_order() -> None:
    # Given fal-ai (not spoken here) first, a staging nscale, then a live together
    responses.get(
        FLUX_INFO,
        json=answers.hub_model_info(
            FLUX,
            [
                answers.mapping("fal-ai", "fal-ai/flux/schnell"),
                answers.mapping("nscale", "flux", status="staging"),
                answers.mapping("together", "together-flux"),
            ],
        ),
    )
    responses.post(f"{ROUTER}/together/v1/images/generations", json=answers.together_images(images.png((8, 8))))
    clock = FakeClock(60)

    generator(clock).generate("a tree", clock.deadline)

    assert responses.calls[1].request.url == f"{ROUTER}/together/v1/images/generations"


@pytest.mark.parametrize(
    "mappings",
    [
        [],
        [answers.mapping("fal-ai", "fal-ai/flux/schnell"), answers.mapping("replicate", "bfl/flux")],
        [answers.mapping("nscale", "flux", status="error")],
        [answers.mapping("nscale", "flux", task="conversational")],
    ],
    ids=["no provider", "only unspoken providers", "not live", "another task"],
)
@responses.activate
def test_a_model_with_no_live_supported_mapping_is_unavailable(mappings: list) -> None:
    responses.get(FLUX_INFO, json=answers.hub_model_info(FLUX, mappings))
    clock = FakeClock(60)
    with pytest.raises(ModelUnavailable):
        generator(clock).generate("a prompt", clock.deadline)
    assert len(responses.calls) == 1  # nothing was sent to a provider


@responses.activate
def test_a_model_the_hub_does_not_know_is_unavailable() -> None:
    responses.get(FLUX_INFO, status=404, json={"error": "Repository not found"})
    clock = FakeClock(60)
    with pytest.raises(ModelUnavailable):
        generator(clock).generate("a prompt", clock.deadline)


@responses.activate
def test_a_provider_that_stopped_serving_the_model_makes_it_unavailable_and_is_looked_up_again() -> None:
    # Given the Hub still maps FLUX to together, but together's route says it no longer serves it
    serve("together")
    route = f"{ROUTER}/together/v1/images/generations"
    responses.post(route, status=400, json=answers.provider_model_not_supported("together"))
    clock = FakeClock(60)
    gen = generator(clock)

    # When a picture is asked for twice, Then each is unavailable and the Hub is asked each time
    for _ in range(2):
        with pytest.raises(ModelUnavailable):
            gen.generate("a prompt", clock.deadline)
    assert len([c for c in responses.calls if c.request.url.startswith(HUB)]) == 2


@pytest.mark.parametrize(
    ("provider", "answer"),
    [
        ("hf-inference", {"json": {"error": "something"}}),
        ("hf-inference", {"body": b"\x89PNG\r\n\x1a\n garbage", "content_type": "image/png"}),
        ("hf-inference", {"body": images.truncated_png(), "content_type": "image/png"}),
        ("nscale", {"json": {"data": []}}),
        ("nscale", {"json": {"data": [{"b64_json": 12}]}}),
        ("nscale", {"json": {"data": [{"b64_json": "not base64!"}]}}),
        ("together", {"json": {"data": [{"url": "https://elsewhere/x.png"}]}}),
    ],
    ids=["json not image", "garbage png", "truncated png", "no data", "b64 not str", "bad base64", "url only"],
)
@responses.activate
def test_a_picture_answer_that_is_not_an_image_is_a_bad_response(provider: str, answer: dict) -> None:
    serve(provider, FLUX)
    url, _ = hf.request_for(hf_routing.ProviderMapping(provider, FLUX, "text-to-image", "live"), ROUTER, "p", 512)
    responses.post(url, **answer)
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        generator(clock).generate("a prompt", clock.deadline)
    assert caught.value.code == "PROVIDER_BAD_RESPONSE"


# --- the Hub mapping, as doctor reads it ----------------------------------------------------------


@responses.activate
def test_fetch_mapping_reads_the_list_form() -> None:
    responses.get(
        FLUX_INFO,
        json=answers.hub_model_info(
            FLUX, [answers.mapping("nscale", "a"), answers.mapping("together", "b", status="staging")]
        ),
    )
    assert hf_routing.fetch_mapping(HUB, FLUX, TOKEN) == [
        hf_routing.ProviderMapping("nscale", "a", "text-to-image", "live"),
        hf_routing.ProviderMapping("together", "b", "text-to-image", "staging"),
    ]


@responses.activate
def test_fetch_mapping_reads_the_dict_form_in_its_order() -> None:
    mappings = [
        answers.mapping("together", "t", task="conversational"),
        answers.mapping("groq", "g", task="conversational"),
    ]
    responses.get(f"{HUB}/api/models/{VLM}", json=answers.hub_model_info(VLM, mappings, form="dict"))
    found = hf_routing.fetch_mapping(HUB, VLM, None)
    assert [(m.provider, m.provider_id) for m in found] == [("together", "t"), ("groq", "g")]
    assert "Authorization" not in responses.calls[0].request.headers  # no token, no header


@responses.activate
def test_fetch_mapping_of_an_unknown_model_is_empty() -> None:
    responses.get(FLUX_INFO, status=404, json={"error": "Repository not found"})
    assert hf_routing.fetch_mapping(HUB, FLUX, TOKEN) == []


@responses.activate
def test_fetch_mapping_errors_never_carry_the_token() -> None:
    responses.get(FLUX_INFO, status=401, json={"error": f"Invalid token {TOKEN}"})
    with pytest.raises(ProviderError) as caught:
        hf_routing.fetch_mapping(HUB, FLUX, TOKEN)
    assert (caught.value.code, TOKEN in str(caught.value)) == ("PROVIDER_REJECTED", False)


def test_choose_takes_conversational_mappings_for_chat_models() -> None:
    mappings = [
        hf_routing.ProviderMapping("fal-ai", "x", "conversational", "live"),
        hf_routing.ProviderMapping("groq", "g", "conversational", "live"),
    ]
    assert hf_routing.choose(mappings, "conversational") == mappings[1]


# --- waiting what the service asks, within the deadline ------------------------------------------


@responses.activate
def test_a_429_waits_the_retry_after_seconds() -> None:
    responses.post(CHAT_URL, status=429, json={"error": "rate limited"}, headers={"Retry-After": "7"})
    responses.post(CHAT_URL, json=answers.chat_completion("A cat."))
    clock = FakeClock(60)
    captioner(clock).caption(IMAGE, clock.deadline)
    assert clock.sleeps == [7.0]


@responses.activate
def test_a_429_waits_until_a_retry_after_date(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    monkeypatch.setattr(http.time, "time", lambda: now.timestamp())
    responses.post(CHAT_URL, status=429, headers={"Retry-After": format_datetime(now.replace(second=9), usegmt=True)})
    responses.post(CHAT_URL, json=answers.chat_completion("A cat."))
    clock = FakeClock(60)
    captioner(clock).caption(IMAGE, clock.deadline)
    assert clock.sleeps == [9.0]


@responses.activate
def test_a_429_waits_the_reset_of_an_exhausted_ratelimit_policy() -> None:
    # IETF RateLimit header: the "hour" policy has room, the "minute" one is exhausted for 11 s
    responses.post(CHAT_URL, status=429, headers={"RateLimit": '"hour";r=80;t=1800, "minute";r=0;t=11'})
    responses.post(CHAT_URL, json=answers.chat_completion("A cat."))
    clock = FakeClock(60)
    captioner(clock).caption(IMAGE, clock.deadline)
    assert clock.sleeps == [11.0]


@responses.activate
def test_a_loading_model_waits_its_estimated_time() -> None:
    serve("hf-inference", FLUX)
    route = f"{ROUTER}/hf-inference/models/{FLUX}"
    responses.post(route, status=503, json={"error": f"Model {FLUX} is currently loading", "estimated_time": 12.5})
    responses.post(route, body=images.png((8, 8)), content_type="image/png")
    clock = FakeClock(60)
    generator(clock).generate("a prompt", clock.deadline)
    assert clock.sleeps == [12.5]


@responses.activate
def test_5xx_and_timeouts_are_retried_with_growing_jittered_backoff() -> None:
    responses.post(CHAT_URL, status=500, json={"error": "internal"})
    responses.post(CHAT_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    responses.post(CHAT_URL, status=502, body="Bad Gateway", content_type="text/plain")
    responses.post(CHAT_URL, json=answers.chat_completion("A bridge."))
    clock = FakeClock(60)
    cap = hf.HuggingFaceCaptioner(make_client(clock, jitter=1.0), router_url=ROUTER, model=VLM)
    assert cap.caption(IMAGE, clock.deadline) == "A bridge."
    assert clock.sleeps == [0.5, 1.0, 2.0]


@responses.activate
def test_attempts_are_bounded() -> None:
    responses.post(CHAT_URL, status=503, json={"error": "overloaded"})
    clock = FakeClock(600)
    with pytest.raises(ProviderError) as caught:
        captioner(clock).caption(IMAGE, clock.deadline)
    assert (caught.value.code, len(responses.calls)) == ("PROVIDER_UNAVAILABLE", RetryPolicy().max_attempts)


@responses.activate
def test_a_wait_longer_than_the_budget_ends_at_once_as_timeout() -> None:
    responses.post(CHAT_URL, status=429, headers={"Retry-After": "20"})
    clock = FakeClock(15)
    with pytest.raises(ProviderError) as caught:
        captioner(clock).caption(IMAGE, clock.deadline)
    assert (caught.value.code, clock.sleeps) == ("PROVIDER_TIMEOUT", [])


@responses.activate
def test_read_timeout_never_exceeds_the_remaining_budget() -> None:
    responses.post(CHAT_URL, json=answers.chat_completion("A road."))
    clock = FakeClock(10)
    captioner(clock).caption(IMAGE, clock.deadline)
    connect, read = responses.calls[0].request.req_kwargs["timeout"]
    assert connect + read <= 10


# --- the token -----------------------------------------------------------------------------------


@responses.activate
def test_the_token_is_fetched_lazily_and_never_logged_or_raised(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    responses.post(CHAT_URL, status=503, json={"error": f"busy, token {TOKEN} seen"})
    responses.post(CHAT_URL, status=401, json={"error": f"Invalid credentials in header: Bearer {TOKEN}"})
    clock = FakeClock(60)
    calls: list[int] = []
    cap = captioner(clock, token_calls=calls)
    assert calls == []  # nothing fetched at construction (cold start stays cheap)

    with pytest.raises(ProviderError) as caught:
        cap.caption(IMAGE, clock.deadline)

    captured = capsys.readouterr()
    leaks = [TOKEN in text for text in (str(caught.value), caplog.text, captured.out, captured.err)]
    assert (calls != [], caught.value.code, "***" in str(caught.value), leaks) == (
        True,
        "PROVIDER_REJECTED",
        True,
        [False] * 4,
    )


def test_the_token_comes_from_parameter_store(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from aws_lambda_powertools.utilities import parameters
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    parameters.clear_caches()
    with mock_aws():
        boto3.client("ssm").put_parameter(Name="/reimagine/hf", Value=TOKEN, Type="SecureString")
        assert http.ssm_secret("/reimagine/hf", "token")() == TOKEN
        with pytest.raises(ProviderError) as caught:
            http.ssm_secret("/reimagine/missing", "token")()
    parameters.clear_caches()
    assert caught.value.code == "PROVIDER_UNAVAILABLE"


def test_the_session_retries_only_failed_connections() -> None:
    retries = http.make_session().get_adapter("https://router.huggingface.co").max_retries
    assert (retries.connect, retries.read, retries.status) == (2, 0, 0)


def test_builders_make_a_chain_of_the_configured_models() -> None:
    settings = Settings(
        provider="huggingface",
        hf_caption_models="a/one, b/two",
        hf_image_models="c/three,d/four,c/three",
        result_size=640,
    )
    cap, gen = hf.build_captioner(settings), hf.build_generator(settings)
    assert isinstance(cap, CaptionChain) and isinstance(gen, PictureChain)
    assert ([c.model for c in cap.links], [(g.model, g.size) for g in gen.links]) == (
        ["a/one", "b/two"],
        [("c/three", 640), ("d/four", 640)],
    )


@responses.activate
def test_a_chain_captions_with_the_next_model_when_the_router_does_not_serve_the_first() -> None:
    # Given the router serves only the second model of the caption chain
    responses.post(
        CHAT_URL,
        status=400,
        json=answers.router_model_not_supported("old/vlm"),
        match=[responses.matchers.json_params_matcher({"model": "old/vlm"}, strict_match=False)],
    )
    responses.post(CHAT_URL, json=answers.chat_completion("A green door."))
    clock = FakeClock(60)
    client = make_client(clock)
    chain = CaptionChain([hf.HuggingFaceCaptioner(client, router_url=ROUTER, model=m) for m in ("old/vlm", VLM)])

    # When it captions, Then the second model wrote the caption
    assert (chain.caption(IMAGE, clock.deadline).model, [sent_json(i)["model"] for i in range(2)]) == (
        VLM,
        ["old/vlm", VLM],
    )
