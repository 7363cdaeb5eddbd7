"""Providers' own safety refusals end the request CONTENT_BLOCKED at once: no retry, no fallback to
the next model of the chain, no PROVIDER_* outage code (nothing for the alarms)."""

from __future__ import annotations

import boto3
import pytest
import responses
from botocore.stub import Stubber

from reimagine import clients
from reimagine.errors import ContentBlocked
from reimagine.models import Status
from reimagine.providers import bedrock, http
from reimagine.providers import openai as oa
from reimagine.providers.chain import CaptionChain, PictureChain
from tests.fixtures import refusal_answers as refusals
from tests.fixtures.provider_answers import titan_answer
from tests.fixtures.provider_fakes import IMAGE, FakeCaptioner, FakeClock, FakeGenerator
from tests.fixtures.steps_on_moto import create_request, picture, run_caption, run_generate, upload

OPENAI = "https://api.openai.example"


@pytest.fixture
def runtime():
    client = boto3.client("bedrock-runtime", region_name="us-east-1", config=bedrock.CLIENT_CONFIG)
    with Stubber(client) as stubber:
        client.stubber = stubber
        yield client


def _http(clock: FakeClock) -> http.HttpClient:
    return http.HttpClient(token=lambda: "sk-key", sleep=clock.sleep, rand=lambda: 0.0)


@pytest.mark.parametrize("message", [refusals.TITAN_INPUT_FILTERED, refusals.NOVA_OUTPUT_FILTERED])
def test_a_titan_or_nova_content_filter_blocks_the_picture_without_retrying(runtime, message) -> None:
    # Given Bedrock refusing the prompt or the picture with its content filters
    runtime.stubber.add_client_error("invoke_model", "ValidationException", message, http_status_code=400)
    clock = FakeClock(60)
    gen = bedrock.BedrockGenerator(runtime, model="amazon.nova-canvas-v1:0", sleep=clock.sleep, rand=lambda: 1.0)
    # When a picture is asked for
    with pytest.raises(ContentBlocked) as caught:
        gen.generate("a prompt", clock.deadline)
    # Then it is blocked at the picture, after one call
    assert (caught.value.details, clock.sleeps) == ({"stage": "picture"}, [])


def test_a_stability_output_filter_blocks_the_picture(runtime) -> None:
    runtime.stubber.add_response("invoke_model", titan_answer(refusals.stability_filtered()))
    clock = FakeClock(60)
    gen = bedrock.BedrockGenerator(runtime, model="stability.stable-image-core-v1:1")
    with pytest.raises(ContentBlocked) as caught:
        gen.generate("a prompt", clock.deadline)
    assert caught.value.details == {"stage": "picture"}


@pytest.mark.parametrize("stop_reason", ["content_filtered", "guardrail_intervened"])
def test_a_converse_content_filter_blocks_the_caption(runtime, stop_reason) -> None:
    runtime.stubber.add_response("converse", refusals.converse_filtered(stop_reason))
    clock = FakeClock(60)
    with pytest.raises(ContentBlocked) as caught:
        bedrock.BedrockCaptioner(runtime, model="us.amazon.nova-2-lite-v1:0").caption(IMAGE, clock.deadline)
    assert caught.value.details == {"stage": "caption"}


@pytest.mark.parametrize("answer", [refusals.openai_content_policy_violation(), refusals.openai_moderation_blocked()])
@responses.activate
def test_an_openai_image_refusal_blocks_the_picture_after_one_call(answer) -> None:
    responses.post(f"{OPENAI}/v1/images/generations", status=400, json=answer)
    clock = FakeClock(60)
    with pytest.raises(ContentBlocked) as caught:
        oa.OpenAiGenerator(_http(clock), base_url=OPENAI, model="gpt-image-1").generate("a prompt", clock.deadline)
    assert (caught.value.details, len(responses.calls)) == ({"stage": "picture"}, 1)


@responses.activate
def test_a_chat_content_filter_blocks_the_caption() -> None:
    responses.post(f"{OPENAI}/v1/chat/completions", json=refusals.chat_content_filter())
    clock = FakeClock(60)
    with pytest.raises(ContentBlocked) as caught:
        oa.OpenAiCaptioner(_http(clock), base_url=OPENAI, model="gpt-4.1-mini").caption(IMAGE, clock.deadline)
    assert caught.value.details == {"stage": "caption"}


@responses.activate
def test_a_router_providers_nsfw_refusal_blocks_the_picture() -> None:
    router = "https://router.example"
    responses.post(f"{router}/together/v1/images/generations", status=422, json=refusals.router_nsfw_refusal())
    clock = FakeClock(60)
    with pytest.raises(ContentBlocked) as caught:
        _http(clock).request(
            "POST", f"{router}/together/v1/images/generations", json={}, deadline=clock.deadline, what="generate"
        )
    assert caught.value.details == {"stage": "picture"}


def test_a_refusal_does_not_fall_back_to_the_next_model() -> None:
    # Given a chain whose first model refuses the prompt
    first = FakeGenerator(errors=[ContentBlocked("picture", by="first")])
    second = FakeGenerator()
    clock = FakeClock(60)
    # When a picture is asked for
    with pytest.raises(ContentBlocked):
        PictureChain([first, second]).generate("a prompt", clock.deadline)
    # Then the second model is never asked
    assert second.prompts == []


def test_a_caption_refusal_does_not_fall_back_to_the_next_model() -> None:
    first = FakeCaptioner(errors=[ContentBlocked("caption", by="first")])
    second = FakeCaptioner()
    with pytest.raises(ContentBlocked):
        CaptionChain([first, second]).caption(IMAGE, FakeClock(60).deadline)
    assert second.calls == []


def test_a_refusal_ends_the_request_content_blocked_on_its_first_attempt(aws) -> None:
    # Given a captioned request and a painter that refuses
    request_id = create_request(aws)
    upload(aws, request_id, picture())
    run_caption(aws, request_id, FakeCaptioner())
    # When the generate step runs once
    run_generate(aws, request_id, FakeGenerator(errors=[ContentBlocked("picture", by="fake")]))
    # Then the request is over: FAILED, CONTENT_BLOCKED at the picture, no retry left pending
    record = clients.store().get(request_id)
    assert (record.status, record.error.code, record.error.details) == (
        Status.FAILED,
        "CONTENT_BLOCKED",
        {"stage": "picture"},
    )
