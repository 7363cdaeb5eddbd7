"""Amazon Bedrock through boto3: IAM only, no third-party token.

- caption: the Converse API (model-agnostic) with any multimodal model, the prepared JPEG as an
  image content block;
- picture: InvokeModel with a request body per model family (`image_family`):
  - `titan` (Amazon Titan Image Generator, Nova Canvas): `{"taskType": "TEXT_IMAGE", ...}`,
    `{"images": [b64], "error"?}` back;
  - `stability` (Stable Image Core / Ultra, SD3.5 Large): `{"prompt", "aspect_ratio": "1:1",
    "output_format": "png", "seed"}`, `{"images": [b64], "finish_reasons": [null | reason]}` back.

Model ids may be inference profile ids (`us.`, `eu.`, `apac.`, `global.` …); the family is read
from the model id behind the prefix. Pictures may be painted in another region than the stack's
(`bedrock_image_region`): image models are offered in few regions, and bedrock-runtime is a plain
regional endpoint any function can call. A model that is gone or not granted (ResourceNotFound,
AccessDenied, an end-of-life or invalid-identifier ValidationException) is ModelUnavailable, so a
chain moves on. botocore does not retry: throttling, unready models, timeouts and failed
connections are retried by our own loop, inside the invocation's Deadline.

Time and size. botocore has no total timeout, only `connect_timeout` and `read_timeout` per socket
operation, and its own retries would repeat them unseen by the Deadline. So each attempt uses a
client whose read timeout fits the time left (`runtime_client` per region and 5 s step of read
timeout, at most 60 s; connect 5 s), with botocore's retries off. Bedrock answers a non-streaming
call when the model is done, so the read timeout bounds the wait for the answer. The InvokeModel
body is a StreamingBody: it is read in chunks, at most MAX_PICTURE_BYTES, with the deadline checked
between chunks. Converse answers are read and parsed whole by botocore (no cap of ours applies
there); they are bounded by `maxTokens` (CAPTION_MAX_TOKENS) and come from AWS, not a third party.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError

from reimagine.caption_text import MAX_CAPTION_CHARS
from reimagine.errors import InvalidImage, ModelUnavailable, ProviderError
from reimagine.imaging import to_png
from reimagine.moderation import refusals
from reimagine.providers.base import CAPTION_INSTRUCTION
from reimagine.providers.chain import CaptionChain, PictureChain
from reimagine.providers.retry import RetryPolicy, TransientFailure, run_with_retries
from reimagine.providers.untrusted import for_log

if TYPE_CHECKING:
    from reimagine.config import Settings
    from reimagine.model_call import Deadline, ModelInput

NAME = "bedrock"
T = TypeVar("T")
CAPTION_MAX_TOKENS = 512
RETRYABLE_CODES = {
    "ThrottlingException",
    "ServiceUnavailableException",
    "ModelNotReadyException",
    "ModelTimeoutException",
    "InternalServerException",
}
# "This model cannot be used here": gone (end of life), never existed, or not granted to this account.
UNAVAILABLE_CODES = {"ResourceNotFoundException", "AccessDeniedException"}
# Bedrock subscribes the account to a third-party model on its first use; without the Marketplace
# grants it answers AccessDenied naming the aws-marketplace actions.
SUBSCRIPTION_REMEDY = (
    "the account is not subscribed to this model in AWS Marketplace and this function may not subscribe "
    "to it: add the model's product id (on its Bedrock model card) to BedrockMarketplaceProductIds"
)
# ValidationException also says "bad request"; these phrases are the ones that mean the model itself.
_UNAVAILABLE_VALIDATION = (
    "end of its life",
    "end-of-life",
    "reached the end",
    "model identifier is invalid",
    "isn't supported",
    "is not supported",
    "legacy",
    "on-demand throughput isn",
    "access to the model",
    "operation not allowed",
)
# Inference profile prefixes (geography or global) in front of a model id.
PROFILE_PREFIXES = ("us.", "us-gov.", "eu.", "apac.", "jp.", "au.", "ca.", "global.")
# Square sizes Titan Image Generator v2 / Nova Canvas accept; other sizes are snapped to the nearest.
TITAN_SQUARE_SIZES = (512, 768, 1024)
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 60
READ_TIMEOUT_STEP = 5
# botocore makes one attempt per call (total_max_attempts 1): our loop retries, within the Deadline.
CLIENT_CONFIG = Config(
    connect_timeout=CONNECT_TIMEOUT,
    read_timeout=READ_TIMEOUT,
    retries={"mode": "standard", "total_max_attempts": 1},
)
# A picture answer: Titan/Nova Canvas and Stability answer one base64 PNG in JSON, a few MiB.
MAX_PICTURE_BYTES = 24 * 1024 * 1024
CHUNK_BYTES = 64 * 1024


@lru_cache(maxsize=32)
def runtime_client(region: str | None = None, read_timeout: int = READ_TIMEOUT) -> Any:
    """One bedrock-runtime client per container, region and read timeout (clients are thread-safe
    and keep their pool); at most 12 read timeouts per region, so the cache stays small."""
    config = CLIENT_CONFIG if read_timeout == READ_TIMEOUT else CLIENT_CONFIG.merge(Config(read_timeout=read_timeout))
    return boto3.client("bedrock-runtime", region_name=region, config=config)


def read_timeout_within(seconds: float) -> int:
    """The longest read timeout, in 5 s steps, that leaves the connect timeout within `seconds`."""
    fitting = int((seconds - CONNECT_TIMEOUT) // READ_TIMEOUT_STEP) * READ_TIMEOUT_STEP
    return max(1, min(READ_TIMEOUT, fitting))


def clients_within(region: str | None) -> Callable[[float], Any]:
    """For an attempt with `seconds` left: a client of `region` whose timeouts fit them."""
    return lambda seconds: runtime_client(region, read_timeout_within(seconds))


class _Caller:
    """Runs one Bedrock call with deadline-aware retries and maps its errors to ProviderError; each
    attempt gets `within(time left)`'s client when given (timeouts that fit), else `client`."""

    def __init__(
        self,
        client: Any,
        within: Callable[[float], Any] | None,
        policy: RetryPolicy | None,
        sleep: Callable[[float], None] | None,
        rand: Any,
    ) -> None:
        self._client = client
        self._within = within
        self._retry: dict[str, Any] = {"policy": policy}
        if sleep is not None:
            self._retry["sleep"] = sleep
        if rand is not None:
            self._retry["rand"] = rand

    def __call__(self, call: Callable[[Any], T], *, deadline: Deadline, what: str) -> T:
        def attempt(budget: float) -> T:
            client = self._within(budget) if self._within else self._client
            try:
                return call(client)
            except ClientError as exc:
                raise _classify(exc, what) from None
            except (ReadTimeoutError, BotoConnectionError) as exc:
                raise TransientFailure(type(exc).__name__) from None
            except BotoCoreError as exc:
                raise ProviderError(
                    f"the Bedrock call could not be made ({type(exc).__name__})",
                    code="PROVIDER_UNAVAILABLE",
                ) from None

        return run_with_retries(attempt, deadline=deadline, what=what, **self._retry)


class BedrockCaptioner:
    name = NAME

    def __init__(
        self,
        client: Any,
        *,
        model: str,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
        rand: Callable[[], float] | None = None,
        within: Callable[[float], Any] | None = None,
    ) -> None:
        self._client = client
        self.model = model
        self._call = _Caller(client, within, policy, sleep, rand)

    def caption(self, image: ModelInput, deadline: Deadline) -> str:
        image_format = image.media_type.removeprefix("image/")
        message = {
            "role": "user",
            "content": [
                {"image": {"format": image_format, "source": {"bytes": image.data}}},
                {"text": CAPTION_INSTRUCTION},
            ],
        }
        answer = self._call(
            lambda client: client.converse(
                modelId=self.model,
                messages=[message],
                # Room for a model that reasons before it answers (Claude Haiku 5.5 thinks adaptively by
                # default); the caption itself is cut to MAX_CAPTION_CHARS.
                inferenceConfig={"maxTokens": CAPTION_MAX_TOKENS, "temperature": 0.2},
            ),
            deadline=deadline,
            what="caption",
        )
        if answer.get("stopReason") in refusals.CONVERSE_REFUSALS:
            raise refusals.blocked("caption", self.model, str(answer["stopReason"]))
        try:
            blocks = answer["output"]["message"]["content"]
        except (KeyError, TypeError):
            raise _bad("the Converse answer has no message") from None
        if not isinstance(blocks, list):
            raise _bad("the Converse message content is not a list")
        texts = [block["text"] for block in blocks if isinstance(block, dict) and "text" in block]
        if not all(isinstance(text, str) for text in texts):
            raise _bad("a text block of the Converse answer is not text")
        text = " ".join(texts)
        caption = " ".join(text.split())[:MAX_CAPTION_CHARS].strip()
        if not caption:
            raise _bad("the model returned an empty caption")
        return caption


def base_model_id(model_id: str) -> str:
    """The foundation model id behind an inference profile id (`us.anthropic.x` -> `anthropic.x`)."""
    for prefix in PROFILE_PREFIXES:
        if model_id.startswith(prefix):
            return model_id[len(prefix) :]
    return model_id


def image_family(model_id: str) -> str | None:
    """The request-body family of an image model id (profile prefixes stripped); None when unsupported."""
    base = base_model_id(model_id)
    if base.startswith(("amazon.titan-image-generator", "amazon.nova-canvas")):
        return "titan"
    if base.startswith(("stability.stable-image-core", "stability.stable-image-ultra", "stability.sd3")):
        return "stability"
    return None


def _seed(prompt: str, limit: int) -> int:
    # A seed from the prompt: the same caption gives the same picture on a redelivered event.
    return int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:4], "big") % limit


class BedrockGenerator:
    name = NAME

    def __init__(
        self,
        client: Any,
        *,
        model: str,
        size: int = 768,
        cfg_scale: float = 8.0,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
        rand: Callable[[], float] | None = None,
        within: Callable[[float], Any] | None = None,
    ) -> None:
        self._client = client
        self.model = model
        self.family = image_family(model)
        self.size = min(TITAN_SQUARE_SIZES, key=lambda s: abs(s - size))
        self.cfg_scale = cfg_scale
        self._call = _Caller(client, within, policy, sleep, rand)

    def request_body(self, prompt: str) -> dict[str, Any]:
        if self.family == "stability":
            # Stable Image Core/Ultra and SD3.5: a square PNG; the size is the model's own for 1:1.
            return {"prompt": prompt, "aspect_ratio": "1:1", "output_format": "png", "seed": _seed(prompt, 4294967294)}
        return {
            "taskType": "TEXT_IMAGE",
            "textToImageParams": {"text": prompt},
            "imageGenerationConfig": {
                "numberOfImages": 1,
                "width": self.size,
                "height": self.size,
                "cfgScale": self.cfg_scale,
                "seed": _seed(prompt, 2_147_483_646),
            },
        }

    def generate(self, prompt: str, deadline: Deadline) -> bytes:
        if self.family is None:
            raise ModelUnavailable(f"{self.model} is not an image model family this code can call")
        body = json.dumps(self.request_body(prompt))
        # The body is read inside the attempt: a timeout or a cut connection while reading it is retried.
        raw = self._call(
            lambda client: read_body(
                client.invoke_model(
                    modelId=self.model, body=body, contentType="application/json", accept="application/json"
                ),
                deadline,
            ),
            deadline=deadline,
            what="generate",
        )
        try:
            payload = json.loads(raw)
        except ValueError:
            raise _bad("the image model's answer is not JSON") from None
        if not isinstance(payload, dict):
            raise _bad("the image model's answer is not a JSON object")
        reasons = payload.get("finish_reasons")
        refusal = payload.get("error") or (next((r for r in reasons if r), None) if isinstance(reasons, list) else None)
        if refusal and str(refusal).startswith("Inference error"):
            raise _bad(f"the image model failed: {for_log(refusal)}")  # Stability's own failure
        if refusal and (
            refusals.is_stability_filter(str(refusal))
            or refusals.is_bedrock_filter("ValidationException", str(refusal))
        ):
            # Stability's "Filter reason: …" (or Titan's content-filter `error`): a content decision.
            raise refusals.blocked("generate", self.model, "filter")
        if refusal:
            # Titan reports refusals in `error`, Stability in `finish_reasons` ("Filter reason: …"),
            # both in a successful call.
            raise ProviderError(
                f"the image model refused the prompt: {for_log(refusal)}",
                code="PROVIDER_REJECTED",
                retryable=False,
            )
        images = payload.get("images")
        if not isinstance(images, list) or not images or not isinstance(images[0], str):
            raise _bad("the image model returned no image")
        try:
            return to_png(base64.b64decode(images[0], validate=True), max_side=self.size)
        except (binascii.Error, ValueError):
            raise _bad("the returned image is not valid base64") from None
        except InvalidImage as exc:
            raise _bad(f"the returned picture does not decode ({exc.code})") from None


def read_body(answer: dict[str, Any], deadline: Deadline, max_bytes: int = MAX_PICTURE_BYTES) -> bytes:
    """InvokeModel's StreamingBody, read in chunks: at most `max_bytes`, and no chunk started once
    the deadline has passed."""
    body = answer.get("body")
    if body is None:
        raise _bad("the image model's answer has no body")
    data = bytearray()
    with contextlib.closing(body):
        while chunk := body.read(CHUNK_BYTES):
            data += chunk
            if len(data) > max_bytes:
                raise _bad(f"the image model's answer is more than the {max_bytes} bytes accepted")
            if deadline.remaining() <= 0:
                raise ProviderError(
                    "generate: the answer did not arrive within the time budget", code="PROVIDER_TIMEOUT"
                )
    return bytes(data)


def build_captioner(settings: Settings) -> CaptionChain:
    client = runtime_client()
    return CaptionChain(
        [
            BedrockCaptioner(client, model=model, within=clients_within(None))
            for model in settings.chain(settings.bedrock_caption_models)
        ]
    )


def build_generator(settings: Settings) -> PictureChain:
    region = settings.bedrock_image_region or None  # empty: the function's own region
    client = runtime_client(region)
    return PictureChain(
        [
            BedrockGenerator(client, model=model, size=settings.result_size, within=clients_within(region))
            for model in settings.chain(settings.bedrock_image_models)
        ]
    )


def _classify(exc: ClientError, what: str = "") -> Exception:
    error = exc.response.get("Error", {})
    code = error.get("Code", "Unknown")
    full = " ".join(str(error.get("Message", "")).split())
    message = for_log(full)
    if refusals.stage_of(what) and refusals.is_bedrock_filter(code, full):
        return refusals.blocked(what, "bedrock", code)  # Titan/Nova content filters: a content decision
    if code in RETRYABLE_CODES:
        return TransientFailure(f"{code}: {message}" if message else code)
    if code == "AccessDeniedException" and "aws-marketplace" in full.lower():
        return ModelUnavailable(f"Bedrock cannot use this model: {SUBSCRIPTION_REMEDY} ({code})")
    if code in UNAVAILABLE_CODES or (
        code == "ValidationException" and any(phrase in message.lower() for phrase in _UNAVAILABLE_VALIDATION)
    ):
        return ModelUnavailable(f"Bedrock cannot use this model: {code}: {message}")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if status >= 500 or status == 429:
        return TransientFailure(f"{code} (HTTP {status})")
    return ProviderError(f"Bedrock refused the request: {code}: {message}", code="PROVIDER_REJECTED", retryable=False)


def _bad(message: str) -> ProviderError:
    return ProviderError(message, code="PROVIDER_BAD_RESPONSE", retryable=True)
