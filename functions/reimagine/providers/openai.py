"""Any OpenAI-compatible server over plain `requests`: OpenAI itself, or one run locally (Ollama,
vLLM, LM Studio, llama.cpp's server, LocalAI).

- caption: `POST {base}/v1/chat/completions`, the image inline as a `data:` URL `image_url` part
  (OpenAI API reference, "Create chat completion"; the servers above accept the same shape);
- picture: `POST {base}/v1/images/generations` with `{"model", "prompt", "n": 1, "size": "WxH",
  "response_format": "b64_json"}`, `data[0].b64_json` back (OpenAI API reference, "Create image").
  OpenAI's gpt-image models always answer base64 and reject `response_format`, so it is left out
  for them.

The key is optional (local servers need none) and lives in SSM Parameter Store when set. A 404 or a
`model_not_found` error is ModelUnavailable, so a chain moves on; everything else is classified as
for Hugging Face (providers/http.py).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from reimagine.errors import InvalidImage
from reimagine.imaging import to_png
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
    from reimagine.config import Settings
    from reimagine.model_call import Deadline, ModelInput

NAME = "openai"
# OpenAI's image sizes for dall-e-3 / gpt-image; other servers take any "WxH".
_OPENAI_SQUARE = "1024x1024"


def _v1(base_url: str) -> str:
    """The API root: a base given with or without its trailing /v1 (Ollama's docs give `.../v1`)."""
    base = base_url.rstrip("/")
    return base if base.endswith("/v1") else f"{base}/v1"


class OpenAiCaptioner:
    name = NAME

    def __init__(self, client: HttpClient, *, base_url: str, model: str) -> None:
        self._client = client
        self._url = f"{_v1(base_url)}/chat/completions"
        self.model = model

    def caption(self, image: ModelInput, deadline: Deadline) -> str:
        return chat_caption(self._client, self._url, model=self.model, image=image, deadline=deadline)


class OpenAiGenerator:
    name = NAME

    def __init__(self, client: HttpClient, *, base_url: str, model: str, size: int = 768) -> None:
        self._client = client
        self._url = f"{_v1(base_url)}/images/generations"
        self.model = model
        self.size = size

    def request_body(self, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "prompt": prompt, "n": 1}
        if self.model.startswith(("gpt-image", "dall-e")):
            body["size"] = _OPENAI_SQUARE
        else:
            body["size"] = f"{self.size}x{self.size}"
        if not self.model.startswith("gpt-image"):
            body["response_format"] = "b64_json"
        return body

    def generate(self, prompt: str, deadline: Deadline) -> bytes:
        response = self._client.request(
            "POST",
            self._url,
            json=self.request_body(prompt),
            deadline=deadline,
            what="generate",
            model=self.model,
            max_bytes=MAX_PICTURE_BYTES,
        )
        raw = b64_json_image(json_body(response))
        try:
            return to_png(raw, max_side=self.size)
        except InvalidImage as exc:
            raise bad(f"the returned picture does not decode ({exc.code})") from None


@lru_cache(maxsize=4)
def shared_client(key_parameter: str) -> HttpClient:
    """One client per container and key; no key parameter, no Authorization header."""
    return HttpClient(token=ssm_secret(key_parameter, "OpenAI-compatible API key") if key_parameter else None)


def build_captioner(settings: Settings) -> CaptionChain:
    client = shared_client(settings.openai_key_parameter)
    return CaptionChain(
        [
            OpenAiCaptioner(client, base_url=settings.openai_base_url, model=model)
            for model in settings.chain(settings.openai_caption_models)
        ]
    )


def build_generator(settings: Settings) -> PictureChain:
    client = shared_client(settings.openai_key_parameter)
    return PictureChain(
        [
            OpenAiGenerator(client, base_url=settings.openai_base_url, model=model, size=settings.result_size)
            for model in settings.chain(settings.openai_image_models)
        ]
    )
