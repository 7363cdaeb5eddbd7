"""Hugging Face Inference Providers, spoken as huggingface_hub's InferenceClient speaks them.

Mirrors huggingface_hub 1.29.0.dev0 (commit ee0a4510f4bc15e26cb722be2efc2bdb01383ca0, 2026-08-20),
`src/huggingface_hub/inference/_providers/`, with an `hf_` token (so every call goes through the
router, `{router}/{provider}/...`), without depending on the package (it would grow every cold start):

- caption: `_common.AutoRouterConversationalTask` — `POST {router}/v1/chat/completions` with the
  Hub model id; the router picks the provider. The image goes inline as a `data:` URL part;
- picture: `provider="auto"` — the provider is the first live one in the model's Hub mapping
  (hf_routing.py), then that provider's text-to-image helper:
  - `hf_inference.HFInferenceTask("text-to-image")`: `POST {router}/hf-inference/models/{id}`,
    `{"inputs", "parameters": {"width", "height"}}`, raw image bytes back;
  - `nscale.NscaleTextToImageTask`: `POST {router}/nscale/v1/images/generations`,
    `{"response_format": "b64_json", "prompt", "model", "size": "WxH"}`, `data[0].b64_json` back;
  - `together.TogetherTextToImageTask`: `POST {router}/together/v1/images/generations`,
    `{"prompt", "response_format": "base64", "width", "height", "model"}`, `data[0].b64_json` back;
  every text-to-image request carries `Accept: image/png`, as `InferenceClient._inner_post` adds.

fal-ai and replicate are not spoken: their text-to-image answers are URLs to fetch (or a queue to
poll) on another host. A model served only by them is unavailable here and a chain moves on.
The token lives in SSM Parameter Store (SecureString); it is only ever put in the Authorization
header, never logged, never in an error.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from reimagine.errors import InvalidImage, ModelUnavailable
from reimagine.imaging import MAX_PICTURE_SIDE, to_png
from reimagine.providers import hf_routing
from reimagine.providers.chain import CaptionChain, PictureChain
from reimagine.providers.http import (
    MAX_PICTURE_BYTES,
    HttpClient,
    b64_json_image,
    bad,
    chat_caption,
    json_body,
    ssm_secret,
)

if TYPE_CHECKING:
    import requests

    from reimagine.config import Settings
    from reimagine.model_call import Deadline, ModelInput
    from reimagine.providers.hf_routing import ProviderMapping

NAME = "huggingface"


class HuggingFaceCaptioner:
    """One vision-language model, asked through the router's chat completions."""

    name = NAME

    def __init__(self, client: HttpClient, *, router_url: str, model: str) -> None:
        self._client = client
        self._url = f"{router_url.rstrip('/')}/v1/chat/completions"
        self.model = model

    def caption(self, image: ModelInput, deadline: Deadline) -> str:
        return chat_caption(self._client, self._url, model=self.model, image=image, deadline=deadline, stream=False)


class HuggingFaceGenerator:
    """One text-to-image model, on whichever supported provider the Hub says serves it."""

    name = NAME

    def __init__(self, client: HttpClient, *, router_url: str, hub_url: str, model: str, size: int = 768) -> None:
        self._client = client
        self._router = router_url.rstrip("/")
        self._hub = hub_url.rstrip("/")
        self.model = model
        self.size = size
        self._mapping: ProviderMapping | None = None  # resolved once per container

    def generate(self, prompt: str, deadline: Deadline) -> bytes:
        if self._mapping is None:
            self._mapping = hf_routing.resolve(self._client, self._hub, self.model, "text-to-image", deadline)
        mapping = self._mapping
        url, body = request_for(mapping, self._router, prompt, self.size)
        try:
            response = self._client.request(
                "POST",
                url,
                json=body,
                headers={"Accept": "image/png"},
                deadline=deadline,
                what="generate",
                model=self.model,
                max_bytes=MAX_PICTURE_BYTES,
            )
        except ModelUnavailable:
            self._mapping = None  # the Hub may list another provider next time
            raise
        return to_picture(mapping.provider, response, max_side=self.size)


def request_for(mapping: ProviderMapping, router: str, prompt: str, size: int) -> tuple[str, dict[str, Any]]:
    """The URL and JSON body of a text-to-image call, as the provider's helper in huggingface_hub builds it."""
    if mapping.provider == "hf-inference":
        return (
            f"{router}/hf-inference/models/{mapping.provider_id}",
            {"inputs": prompt, "parameters": {"width": size, "height": size}},
        )
    if mapping.provider == "nscale":
        return (
            f"{router}/nscale/v1/images/generations",
            {"response_format": "b64_json", "prompt": prompt, "model": mapping.provider_id, "size": f"{size}x{size}"},
        )
    if mapping.provider == "together":
        return (
            f"{router}/together/v1/images/generations",
            {
                "prompt": prompt,
                "response_format": "base64",
                "width": size,
                "height": size,
                "model": mapping.provider_id,
            },
        )
    raise ModelUnavailable(f"the provider {mapping.provider} is not one this code speaks for text-to-image")


def to_picture(provider: str, response: requests.Response, *, max_side: int = MAX_PICTURE_SIDE) -> bytes:
    """PNG bytes, no larger than `max_side`, from a provider's answer: raw image bytes (hf-inference) or
    `data[0].b64_json`."""
    if provider == "hf-inference":
        if response.headers.get("Content-Type", "").startswith("application/json"):
            raise bad("expected an image, got JSON")
        raw = response.content
    else:
        raw = b64_json_image(json_body(response))
    try:
        return to_png(raw, max_side=max_side)
    except InvalidImage as exc:
        raise bad(f"the returned picture does not decode ({exc.code})") from None


@lru_cache(maxsize=4)
def shared_client(token_parameter: str) -> HttpClient:
    """One client (and connection pool) per container and token."""
    return HttpClient(token=ssm_secret(token_parameter, "Hugging Face token"))


def build_captioner(settings: Settings) -> CaptionChain:
    client = shared_client(settings.hf_token_parameter)
    return CaptionChain(
        [
            HuggingFaceCaptioner(client, router_url=settings.hf_router_url, model=model)
            for model in settings.chain(settings.hf_caption_models)
        ]
    )


def build_generator(settings: Settings) -> PictureChain:
    client = shared_client(settings.hf_token_parameter)
    return PictureChain(
        [
            HuggingFaceGenerator(
                client,
                router_url=settings.hf_router_url,
                hub_url=settings.hf_hub_url,
                model=model,
                size=settings.result_size,
            )
            for model in settings.chain(settings.hf_image_models)
        ]
    )
