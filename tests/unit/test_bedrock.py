from __future__ import annotations

import base64
import io
import json

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import ANY, Stubber
from PIL import Image
from pydantic import ValidationError

from reimagine.config import Settings
from reimagine.errors import ContentBlocked, ModelUnavailable, ProviderError
from reimagine.providers import bedrock
from tests.fixtures import images
from tests.fixtures.provider_answers import titan_answer
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
        "inferenceConfig": {"maxTokens": bedrock.CAPTION_MAX_TOKENS, "temperature": 0.2},
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


def test_a_malformed_request_is_rejected_at_once(client) -> None:
    client.stubber.add_client_error(
        "converse",
        service_error_code="ValidationException",
        service_message="Malformed input request: #: extraneous key [foo] is not permitted",
        http_status_code=400,
    )
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        captioner(client, clock).caption(IMAGE, clock.deadline)
    assert (caught.value.code, caught.value.retryable, clock.sleeps) == ("PROVIDER_REJECTED", False, [])


# The errors Bedrock answers for a model that is gone, unknown, not granted, or callable only
# through an inference profile (messages as the service words them).
UNAVAILABLE_ANSWERS = {
    "end of life": (
        "ResourceNotFoundException",
        "This model version has reached the end of its life. Please refer to the AWS documentation for more details.",
        404,
    ),
    "end of life (validation)": (
        "ValidationException",
        "This model version has reached the end of its life. Please refer to the AWS documentation for more details.",
        400,
    ),
    "unknown id": ("ValidationException", "The provided model identifier is invalid.", 400),
    "no access": ("AccessDeniedException", "You don't have access to the model with the specified model ID.", 403),
    "profile only": (
        "ValidationException",
        "Invocation of model ID anthropic.claude-haiku-5-5 with on-demand throughput isn\u2019t supported. Retry "
        "your request with the ID or ARN of an inference profile that contains this model.",
        400,
    ),
}


@pytest.mark.parametrize("answer", UNAVAILABLE_ANSWERS.values(), ids=list(UNAVAILABLE_ANSWERS))
def test_a_model_bedrock_cannot_use_is_unavailable_at_once(client, answer: tuple[str, str, int]) -> None:
    code, message, status = answer
    client.stubber.add_client_error(
        "converse", service_error_code=code, service_message=message, http_status_code=status
    )
    clock = FakeClock(60)
    with pytest.raises(ModelUnavailable) as caught:
        captioner(client, clock).caption(IMAGE, clock.deadline)
    assert (caught.value.code, code in str(caught.value), clock.sleeps) == ("MODEL_UNAVAILABLE", True, [])


# Bedrock's answer when it cannot subscribe the account to a third-party model on first use (both
# wordings from the AWS knowledge-center article on Marketplace AccessDenied for Bedrock).
SUBSCRIPTION_DENIED = {
    "actions named": "Model access is denied due to IAM user or service role is not authorized to perform the "
    "required AWS Marketplace actions (aws-marketplace:ViewSubscriptions, aws-marketplace:Subscribe) to enable "
    "access to this model. Refer to the Amazon Bedrock User Guide for more information.",
    "role named": "Model access is denied due to arn:aws:sts::123456789012:assumed-role/reimagine-GenerateFunctionRole"
    "-AbCdEfGhIjKl/reimagine-GenerateFunction-MnOpQrStUvWx is not authorized to perform: aws-marketplace:Subscribe "
    "on resource: * because no identity-based policy allows the aws-marketplace:Subscribe action",
}


@pytest.mark.parametrize("message", SUBSCRIPTION_DENIED.values(), ids=list(SUBSCRIPTION_DENIED))
def test_a_refused_marketplace_subscription_names_the_remedy(client, message: str) -> None:
    client.stubber.add_client_error(
        "invoke_model", service_error_code="AccessDeniedException", service_message=message, http_status_code=403
    )
    clock = FakeClock(60)
    with pytest.raises(ModelUnavailable) as caught:
        generator(client, clock).generate("a prompt", clock.deadline)
    # The remedy, and not the role or account the service named
    assert str(caught.value) == (
        "MODEL_UNAVAILABLE: Bedrock cannot use this model: the account is not subscribed to this model in AWS "
        "Marketplace and this function may not subscribe to it: add the model's product id (on its Bedrock model "
        "card) to BedrockMarketplaceProductIds (AccessDeniedException)"
    )


def test_titan_content_filter_error_field_blocks_the_picture(client) -> None:
    client.stubber.add_response(
        "invoke_model",
        titan_answer({"images": [], "error": "This request has been blocked by our content filters."}),
    )
    clock = FakeClock(60)
    with pytest.raises(ContentBlocked) as caught:
        generator(client, clock).generate("a prompt", clock.deadline)
    assert caught.value.details == {"stage": "picture"}


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


# --- answers are untrusted: bounded in size and time -------------------------------------------


def titan_png_payload() -> bytes:
    return json.dumps({"images": [base64.b64encode(images.png((64, 64))).decode()], "error": None}).encode()


def test_an_invoke_model_body_past_the_cap_is_refused(client) -> None:
    # Given a valid Titan answer padded with whitespace past the picture cap
    raw = titan_png_payload() + b" " * bedrock.MAX_PICTURE_BYTES
    client.stubber.add_response("invoke_model", titan_answer(raw))
    clock = FakeClock(60)
    # When a picture is asked, Then the answer is refused as a bad one
    with pytest.raises(ProviderError) as caught:
        generator(client, clock).generate("a prompt", clock.deadline)
    assert caught.value.code == "PROVIDER_BAD_RESPONSE"


class SlowBody:
    """A StreamingBody whose every read takes 5 s of the (fake) clock."""

    def __init__(self, raw: bytes, clock: FakeClock) -> None:
        self._stream = io.BytesIO(raw)
        self._clock = clock

    def read(self, amt: int | None = None) -> bytes:
        self._clock.now += 5
        return self._stream.read(4096 if amt is None else min(amt, 4096))

    def close(self) -> None:
        self._stream.close()


def test_an_invoke_model_body_that_outlasts_the_deadline_ends_provider_timeout() -> None:
    # Given an image model whose answer arrives 4 KiB every 5 s, and 20 s left
    clock = FakeClock(20)
    raw = titan_png_payload() + b" " * 64 * 1024

    class Painter:
        def invoke_model(self, **kwargs):
            return {"body": SlowBody(raw, clock), "contentType": "application/json"}

    # When a picture is asked, Then the call ends PROVIDER_TIMEOUT
    with pytest.raises(ProviderError) as caught:
        generator(Painter(), clock).generate("a prompt", clock.deadline)
    assert caught.value.code == "PROVIDER_TIMEOUT"


def test_each_attempt_gets_a_client_whose_timeouts_fit_the_time_left() -> None:
    # Given the clients the builders give each attempt
    bedrock.runtime_client.cache_clear()
    within = bedrock.clients_within("us-east-1")
    # When attempts have 8 s, 39 s and 300 s left
    configs = [within(seconds).meta.config for seconds in (8.0, 39.0, 300.0)]
    bedrock.runtime_client.cache_clear()
    # Then connect + read fit the time left (60 s read at most), and botocore does not retry unseen
    assert [(c.connect_timeout + c.read_timeout, c.retries["total_max_attempts"]) for c in configs] == [
        (6, 1),
        (35, 1),
        (65, 1),
    ]


# --- construction --------------------------------------------------------------------------------


def test_client_is_built_once_with_timeouts_and_standard_retries() -> None:
    bedrock.runtime_client.cache_clear()
    first = bedrock.runtime_client("us-east-1")
    assert bedrock.runtime_client("us-east-1") is first
    config = first.meta.config
    assert config.connect_timeout == 5 and config.read_timeout == 60
    assert config.retries["mode"] == "standard"
    bedrock.runtime_client.cache_clear()


def test_builders_make_chains_of_the_configured_models() -> None:
    bedrock.runtime_client.cache_clear()
    settings = Settings(
        provider="bedrock",
        bedrock_caption_models="us.anthropic.claude-haiku-5-5,us.amazon.nova-2-lite-v1:0",
        bedrock_image_models="stability.stable-image-core-v1:1,amazon.nova-canvas-v1:0",
        result_size=1024,
    )
    cap, gen = bedrock.build_captioner(settings), bedrock.build_generator(settings)
    assert ([c.model for c in cap.links], [(g.model, g.family, g.size) for g in gen.links]) == (
        ["us.anthropic.claude-haiku-5-5", "us.amazon.nova-2-lite-v1:0"],
        [("stability.stable-image-core-v1:1", "stability", 1024), ("amazon.nova-canvas-v1:0", "titan", 1024)],
    )
    bedrock.runtime_client.cache_clear()


@pytest.mark.parametrize(("image_region", "painter"), [("us-west-2", "us-west-2"), ("", "us-east-1")])
def test_pictures_are_painted_in_the_image_region_and_captions_here(image_region: str, painter: str) -> None:
    # Given a function in us-east-1 (the test environment's region)
    bedrock.runtime_client.cache_clear()
    settings = Settings(provider="bedrock", bedrock_image_region=image_region)
    cap, gen = bedrock.build_captioner(settings), bedrock.build_generator(settings)
    regions = (cap.links[0]._client.meta.region_name, gen.links[0]._client.meta.region_name)
    bedrock.runtime_client.cache_clear()
    assert regions == ("us-east-1", painter)


def test_an_image_region_that_is_not_one_region_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(bedrock_image_region="us-west-2,eu-west-1")


# --- families and inference profiles -------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "family"),
    [
        ("amazon.titan-image-generator-v2:0", "titan"),
        ("amazon.nova-canvas-v1:0", "titan"),
        ("us.amazon.nova-canvas-v1:0", "titan"),
        ("stability.stable-image-core-v1:1", "stability"),
        ("us.stability.stable-image-ultra-v1:1", "stability"),
        ("global.stability.sd3-5-large-v1:0", "stability"),
        ("stability.stable-diffusion-xl-v1", None),
        ("anthropic.claude-haiku-5-5", None),
        ("us.meta.llama4-maverick-17b-instruct-v1:0", None),
    ],
)
def test_the_image_family_is_read_behind_any_profile_prefix(model_id: str, family: str | None) -> None:
    assert bedrock.image_family(model_id) == family


def test_a_model_of_no_known_family_is_unavailable_without_a_call(client) -> None:
    clock = FakeClock(60)
    with pytest.raises(ModelUnavailable):
        bedrock.BedrockGenerator(client, model="cohere.command-r-v1:0").generate("p", clock.deadline)


def test_stability_pictures_send_a_prompt_and_read_images(client) -> None:
    # Given Stable Image Core's documented request and answer shapes
    gen = bedrock.BedrockGenerator(client, model="stability.stable-image-core-v1:1", sleep=lambda _: None)
    body = gen.request_body("a lighthouse")
    png = base64.b64encode(images.png((48, 48))).decode()
    client.stubber.add_response(
        "invoke_model",
        titan_answer({"seeds": [body["seed"]], "finish_reasons": [None], "images": [png]}),
        {"modelId": "stability.stable-image-core-v1:1", "body": json.dumps(body), "contentType": ANY, "accept": ANY},
    )
    clock = FakeClock(60)

    # When a picture is generated
    data = gen.generate("a lighthouse", clock.deadline)

    # Then the body is the prompt with a square PNG asked for, and the image is the answer's
    assert ({k: v for k, v in body.items() if k != "seed"}, Image.open(io.BytesIO(data)).size) == (
        {"prompt": "a lighthouse", "aspect_ratio": "1:1", "output_format": "png"},
        (48, 48),
    )


def test_a_stability_filter_reason_blocks_the_picture(client) -> None:
    client.stubber.add_response("invoke_model", titan_answer({"finish_reasons": ["Filter reason: prompt"]}))
    gen = bedrock.BedrockGenerator(client, model="stability.sd3-5-large-v1:0")
    clock = FakeClock(60)
    with pytest.raises(ContentBlocked) as caught:
        gen.generate("a prompt", clock.deadline)
    assert (caught.value.code, caught.value.details) == ("CONTENT_BLOCKED", {"stage": "picture"})


def test_an_inference_profile_id_is_sent_as_the_model_id(client) -> None:
    profile = "us.anthropic.claude-haiku-5-5"
    client.stubber.add_response(
        "converse", converse_answer("A boat."), {"modelId": profile, "messages": ANY, "inferenceConfig": ANY}
    )
    clock = FakeClock(60)
    assert bedrock.BedrockCaptioner(client, model=profile).caption(IMAGE, clock.deadline) == "A boat."


@pytest.mark.parametrize("content", [[{"text": 7}], [{"text": ["a"]}], "text"], ids=["number", "list", "not a list"])
def test_a_converse_text_that_is_not_a_string_is_a_bad_response(content) -> None:
    # botocore's parser would not produce these; a client that does not validate (a proxy, a fake) might
    class Answers:
        def converse(self, **kwargs):
            answer = converse_answer("x")
            answer["output"]["message"]["content"] = content
            return answer

    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        captioner(Answers(), clock).caption(IMAGE, clock.deadline)
    assert caught.value.code == "PROVIDER_BAD_RESPONSE"


def test_a_reasoning_block_before_the_answer_is_not_the_caption(client) -> None:
    # Given a model that thinks first: Converse returns a reasoningContent block, then the text
    answer = converse_answer("A red door.")
    answer["output"]["message"]["content"].insert(
        0, {"reasoningContent": {"reasoningText": {"text": "The user wants one sentence...", "signature": "sig"}}}
    )
    client.stubber.add_response("converse", answer)
    clock = FakeClock(60)

    # When it captions, Then only the answer's text is the caption
    assert captioner(client, clock).caption(IMAGE, clock.deadline) == "A red door."


def test_a_stability_inference_error_is_a_bad_response_not_a_refusal(client) -> None:
    client.stubber.add_response("invoke_model", titan_answer({"finish_reasons": ["Inference error"], "images": []}))
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        bedrock.BedrockGenerator(client, model="stability.stable-image-core-v1:1").generate("p", clock.deadline)
    assert (caught.value.code, caught.value.retryable) == ("PROVIDER_BAD_RESPONSE", True)
