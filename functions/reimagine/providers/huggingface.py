"""Hugging Face Inference Providers over plain `requests`, through the inference router.

- caption, route "chat": OpenAI-compatible chat completions with a vision-language model, the image
  sent inline as a `data:image/jpeg;base64,...` image_url part;
- caption, route "image-to-text": the hf-inference task route, raw JPEG bytes in, `[{"generated_text"}]` out;
- picture: the hf-inference text-to-image task route, `{"inputs": prompt}` in, raw image bytes out.

The token lives in SSM Parameter Store (SecureString) and is fetched on first use. It is only ever
placed in the Authorization header: never logged, never in an error message.
"""

from __future__ import annotations

import base64
import logging
import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from reimagine.errors import InvalidImage, ProviderError
from reimagine.imaging import to_png
from reimagine.providers.retry import RetryPolicy, TransientFailure, run_with_retries

if TYPE_CHECKING:
    from reimagine.config import Settings
    from reimagine.providers.base import Deadline, ModelInput

NAME = "huggingface"
logger = logging.getLogger(__name__)

CAPTION_INSTRUCTION = (
    "Describe this photo in one sentence of at most 30 words: the main subject, the setting, "
    "the colours and the mood. Reply with the sentence only."
)
MAX_CAPTION_CHARS = 300
CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 60.0
_RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


def make_session() -> requests.Session:
    """A pooled session. urllib3 retries only failed connections (the request never reached the
    server, so even a POST is safe to resend); status codes and read timeouts are retried by our
    own loop, which knows the time budget and reads estimated_time."""
    session = requests.Session()
    retries = Retry(total=2, connect=2, read=0, status=0, other=0, backoff_factor=0.2, raise_on_status=False)
    session.mount("https://", HTTPAdapter(max_retries=retries, pool_connections=2, pool_maxsize=4))
    session.mount("http://", HTTPAdapter(max_retries=retries, pool_connections=2, pool_maxsize=4))
    return session


def ssm_token(parameter_name: str) -> Callable[[], str]:
    """A token getter backed by Parameter Store; Powertools caches the value for five minutes."""

    def get() -> str:
        from aws_lambda_powertools.utilities import parameters

        try:
            value = parameters.get_parameter(parameter_name, decrypt=True, max_age=300)
        except parameters.exceptions.GetParameterError:
            raise ProviderError(
                f"the Hugging Face token could not be read from Parameter Store ({parameter_name})",
                code="PROVIDER_UNAVAILABLE",
                retryable=True,
            ) from None
        return str(value)

    return get


class HuggingFaceClient:
    """POSTs to the router with the token, classifying every outcome for the retry loop."""

    def __init__(
        self,
        *,
        base_url: str,
        token: Callable[[], str],
        session: requests.Session | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._session = session or make_session()
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._rand = rand
        self._read_timeout = read_timeout

    def post(
        self,
        path: str,
        *,
        deadline: Deadline,
        what: str,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        token = self._token()
        url = f"{self.base_url}/{path.lstrip('/')}"
        all_headers = {**(headers or {}), "Authorization": f"Bearer {token}"}

        def attempt(budget: float) -> requests.Response:
            timeout = (CONNECT_TIMEOUT, max(1.0, min(self._read_timeout, budget - CONNECT_TIMEOUT)))
            try:
                response = self._session.post(url, json=json, data=data, headers=all_headers, timeout=timeout)
            except requests.Timeout:
                raise TransientFailure("the request timed out") from None
            except requests.ConnectionError:
                raise TransientFailure("the connection failed") from None
            return _classify(response, token)

        return run_with_retries(
            attempt, deadline=deadline, what=what, policy=self._policy, sleep=self._sleep, rand=self._rand
        )


class HuggingFaceCaptioner:
    name = NAME

    def __init__(self, client: HuggingFaceClient, *, model: str, route: str = "chat") -> None:
        self._client = client
        self.model = model
        self.route = route

    def caption(self, image: ModelInput, deadline: Deadline) -> str:
        ask = self._image_to_text if self.route == "image-to-text" else self._chat
        text = ask(image, deadline)
        caption = " ".join(text.split())[:MAX_CAPTION_CHARS].strip()
        if not caption:
            raise ProviderError("the model returned an empty caption", code="PROVIDER_BAD_RESPONSE")
        return caption

    def _chat(self, image: ModelInput, deadline: Deadline) -> str:
        encoded = base64.b64encode(image.data).decode("ascii")
        body = {
            "model": self.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": CAPTION_INSTRUCTION},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:{image.media_type};base64,{encoded}"},
                        },
                    ],
                }
            ],
            "max_tokens": 120,
            "temperature": 0.2,
            "stream": False,
        }
        response = self._client.post("v1/chat/completions", json=body, deadline=deadline, what="caption")
        payload = _json(response)
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise _bad("the chat completion has no message content") from None
        if isinstance(content, list):  # some providers answer with content parts
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str):
            raise _bad("the chat completion content is not text")
        return content

    def _image_to_text(self, image: ModelInput, deadline: Deadline) -> str:
        response = self._client.post(
            f"hf-inference/models/{self.model}",
            data=image.data,
            headers={"Content-Type": image.media_type},
            deadline=deadline,
            what="caption",
        )
        payload = _json(response)
        first = payload[0] if isinstance(payload, list) and payload else payload
        text = first.get("generated_text") if isinstance(first, dict) else None
        if not isinstance(text, str):
            raise _bad("the image-to-text answer has no generated_text")
        return text


class HuggingFaceGenerator:
    name = NAME

    def __init__(self, client: HuggingFaceClient, *, model: str, size: int = 768) -> None:
        self._client = client
        self.model = model
        self.size = size

    def generate(self, prompt: str, deadline: Deadline) -> bytes:
        body = {"inputs": prompt, "parameters": {"width": self.size, "height": self.size}}
        response = self._client.post(
            f"hf-inference/models/{self.model}",
            json=body,
            headers={"Accept": "image/png"},
            deadline=deadline,
            what="generate",
        )
        if response.headers.get("Content-Type", "").startswith("application/json"):
            raise _bad("expected an image, got JSON" + _error_excerpt(response, ""))
        try:
            return to_png(response.content)
        except InvalidImage as exc:
            raise _bad(f"the returned picture does not decode ({exc.code})") from None


def build_captioner(settings: Settings) -> HuggingFaceCaptioner:
    return HuggingFaceCaptioner(
        _shared_client(settings), model=settings.hf_caption_model, route=settings.hf_caption_route
    )


def build_generator(settings: Settings) -> HuggingFaceGenerator:
    return HuggingFaceGenerator(_shared_client(settings), model=settings.hf_image_model, size=settings.result_size)


_clients: dict[tuple[str, str], HuggingFaceClient] = {}


def _shared_client(settings: Settings) -> HuggingFaceClient:
    """One client (and connection pool) per container and configuration."""
    key = (settings.hf_base_url, settings.hf_token_parameter)
    if key not in _clients:
        _clients[key] = HuggingFaceClient(base_url=settings.hf_base_url, token=ssm_token(settings.hf_token_parameter))
    return _clients[key]


def _classify(response: requests.Response, token: str) -> requests.Response:
    status = response.status_code
    if 200 <= status < 300:
        return response
    excerpt = _error_excerpt(response, token)
    if status == 503:
        # The serverless API answers 503 with {"error": "... is currently loading", "estimated_time": s}.
        raise TransientFailure(f"HTTP 503{excerpt}", wait=_estimated_time(response) or _retry_after(response))
    if status in _RETRY_STATUSES or status >= 500:
        raise TransientFailure(f"HTTP {status}{excerpt}", wait=_retry_after(response))
    raise ProviderError(
        f"the provider refused the request: HTTP {status}{excerpt}", code="PROVIDER_REJECTED", retryable=False
    )


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _estimated_time(response: requests.Response) -> float | None:
    try:
        value = response.json().get("estimated_time")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def _error_excerpt(response: requests.Response, token: str) -> str:
    """A short, token-free excerpt of an error body for the message."""
    try:
        payload = response.json()
        detail = payload.get("error", payload) if isinstance(payload, dict) else payload
        text = detail.get("message", str(detail)) if isinstance(detail, dict) else str(detail)
    except ValueError:
        text = response.text if "text" in response.headers.get("Content-Type", "") else ""
    text = " ".join(text.split())[:200]
    if token:
        text = text.replace(token, "***")
    return f" ({text})" if text else ""


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise _bad("the answer is not JSON") from None


def _bad(message: str) -> ProviderError:
    return ProviderError(message, code="PROVIDER_BAD_RESPONSE", retryable=True)
