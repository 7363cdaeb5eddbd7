"""What the HTTP providers (Hugging Face, OpenAI-compatible servers) share: a pooled session, SSM
secrets, one POST/GET with deadline-aware retries, and the classification of every answer.

- 2xx: the response;
- 429, 408, 425, 5xx, timeouts, failed connections: TransientFailure (retried by providers/retry.py),
  waiting what the service asked for: `Retry-After` (seconds or an HTTP date), the IETF `RateLimit`
  header's `t` when its `r` is 0 (draft-ietf-httpapi-ratelimit-headers: `"default";r=0;t=30`), or the
  serverless API's `estimated_time` while a model loads;
- "this model is not served here": 404, 410, or a 400 whose error says so (OpenAI-style
  `code: model_not_supported / model_not_found`, the router's "not supported by provider"):
  ModelUnavailable, so a chain moves on;
- a safety refusal of a caption or picture call (`content_policy_violation`, `moderation_blocked`, an
  NSFW or content-policy message; reimagine/moderation/refusals.py): CONTENT_BLOCKED, at once;
- any other 4xx: PROVIDER_REJECTED;
- 3xx: PROVIDER_BAD_RESPONSE, not retried. No redirect is followed: an API answers where it is
  asked, a redirect to another origin could carry the request (and its answer) anywhere, and a
  same-origin one would turn a POST into a GET of something else.

Answers are untrusted input, bounded while they stream: at most `max_bytes` (MAX_ANSWER_BYTES for
JSON, MAX_PICTURE_BYTES for pictures) both as received (compressed) and as decoded, so a small gzip
body that inflates to gigabytes is refused after `max_bytes` (an error body is cut at
MAX_ERROR_BYTES instead: its status says what happened); and every attempt has a total time
(providers/cutoff.py), because requests' read timeout restarts with every byte received.

A token is only ever placed in the Authorization header: error excerpts are scrubbed of it, and
nothing here logs a header.
"""

from __future__ import annotations

import base64
import binascii
import logging
import random
import re
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from urllib3.util.retry import Retry

from reimagine.caption_text import MAX_CAPTION_CHARS
from reimagine.errors import ModelUnavailable, ProviderError
from reimagine.moderation import refusals
from reimagine.providers.base import CAPTION_INSTRUCTION
from reimagine.providers.cutoff import Cutoff, CutoffAdapter
from reimagine.providers.retry import RetryPolicy, TransientFailure, run_with_retries
from reimagine.providers.untrusted import for_log

if TYPE_CHECKING:
    from reimagine.model_call import Deadline, ModelInput

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 60.0
MiB = 1024 * 1024
# A chat completion or a Hub model info is a few KiB.
MAX_ANSWER_BYTES = 1 * MiB
# A picture answer: a 2048x2048 RGBA PNG of pure noise is 16 MiB, 21.3 MiB as base64 in JSON.
MAX_PICTURE_BYTES = 24 * MiB
# Enough of an error body to classify it (`code`, "not supported by provider") and quote its start.
MAX_ERROR_BYTES = 64 * 1024
CHUNK_BYTES = 64 * 1024
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
UNSERVED_STATUSES = {404, 410}
# Error codes and phrases with which OpenAI-compatible servers and the HF router say "no such model here".
UNSERVED_CODES = {"model_not_supported", "model_not_found", "model_not_available"}
_UNSERVED_TEXT = re.compile(
    r"not supported by (any )?provider|model .*(does not exist|not found|is not supported|deprecated|no longer)",
    re.IGNORECASE,
)
_RATELIMIT_PARAM = re.compile(r";\s*([rt])\s*=\s*(\d+)")


def make_session() -> requests.Session:
    """A pooled session. urllib3 retries only failed connections (the request never reached the
    server, so even a POST is safe to resend); status codes and read timeouts are retried by our
    own loop, which knows the time budget."""
    session = requests.Session()
    retries = Retry(total=2, connect=2, read=0, status=0, other=0, backoff_factor=0.2, raise_on_status=False)
    session.mount("https://", CutoffAdapter(max_retries=retries, pool_connections=4, pool_maxsize=4))
    session.mount("http://", CutoffAdapter(max_retries=retries, pool_connections=4, pool_maxsize=4))
    return session


def ssm_secret(parameter_name: str, what: str) -> Callable[[], str]:
    """A secret getter backed by Parameter Store; Powertools caches the value for five minutes."""

    def get() -> str:
        from aws_lambda_powertools.utilities import parameters

        try:
            value = parameters.get_parameter(parameter_name, decrypt=True, max_age=300)
        except parameters.exceptions.GetParameterError:
            raise ProviderError(
                f"the {what} could not be read from Parameter Store ({parameter_name})",
                code="PROVIDER_UNAVAILABLE",
                retryable=True,
            ) from None
        return str(value)

    return get


class HttpClient:
    """Sends one request with the bearer token, classifying every outcome for the retry loop."""

    def __init__(
        self,
        *,
        token: Callable[[], str] | None,
        session: requests.Session | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self._token = token
        self._session = session or make_session()
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._rand = rand
        self._read_timeout = read_timeout

    def request(
        self,
        method: str,
        url: str,
        *,
        deadline: Deadline,
        what: str,
        model: str = "",
        json: Any = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> requests.Response:
        """The classified response, its body already read (at most `max_bytes`) within the time left."""
        token = self._token() if self._token else ""
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"

        def attempt(budget: float) -> requests.Response:
            timeout = (CONNECT_TIMEOUT, max(1.0, min(self._read_timeout, budget - CONNECT_TIMEOUT)))
            with Cutoff(budget) as cutoff:
                try:
                    response = self._session.request(
                        method,
                        url,
                        json=json,
                        data=data,
                        params=params,
                        headers=all_headers,
                        timeout=timeout,
                        stream=True,
                        allow_redirects=False,
                    )
                    with response:
                        read_body(response, max_bytes)
                except requests.exceptions.ContentDecodingError:
                    raise bad("the answer's content encoding does not decode") from None
                except requests.RequestException as exc:  # timeouts, failed connections, cut bodies
                    if cutoff.fired:
                        raise _out_of_time(what) from None
                    reason = "the request timed out" if isinstance(exc, requests.Timeout) else "the connection failed"
                    raise TransientFailure(reason) from None
                if cutoff.fired:  # a body without a length, cut short, reads as complete
                    raise _out_of_time(what)
            return classify(response, token=token, model=model, what=what)

        return run_with_retries(
            attempt, deadline=deadline, what=what, policy=self._policy, sleep=self._sleep, rand=self._rand
        )


def read_body(response: requests.Response, max_bytes: int) -> bytes:
    """Read the body in chunks, refusing a 2xx one (PROVIDER_BAD_RESPONSE) as soon as more than
    `max_bytes` arrived or were decoded, and cutting any other at MAX_ERROR_BYTES; `response.content`
    then holds it. urllib3 decompresses at most one chunk's worth per read, so an inflating body
    never costs more than the limit plus a chunk."""
    success = 200 <= response.status_code < 300
    limit = max_bytes if success else min(max_bytes, MAX_ERROR_BYTES)
    declared = response.headers.get("Content-Length", "")
    if success and declared.isdigit() and int(declared) > limit:
        raise bad(f"the answer is {declared} bytes, more than the {limit} accepted")
    body = bytearray()
    for chunk in response.iter_content(CHUNK_BYTES):
        body += chunk
        if len(body) > limit or response.raw.tell() > limit:
            if success:
                raise bad(f"the answer is more than the {limit} bytes accepted")
            del body[limit:]  # an error's first bytes are enough; the connection is closed, not drained
            break
    response._content = bytes(body)  # what .content, .text and .json() read from here on
    return response._content


def _out_of_time(what: str) -> ProviderError:
    return ProviderError(
        f"{what}: the answer did not arrive within the time budget", code="PROVIDER_TIMEOUT", retryable=True
    )


def classify(response: requests.Response, *, token: str, model: str = "", what: str = "") -> requests.Response:
    status = response.status_code
    if 200 <= status < 300:
        return response
    if 300 <= status < 400:
        location = urlsplit(response.headers.get("Location", ""))
        raise ProviderError(
            f"the provider answered HTTP {status} to {for_log(location.netloc) or 'the same host'}; "
            "redirects are not followed",
            code="PROVIDER_BAD_RESPONSE",
            retryable=False,
        )
    excerpt = error_excerpt(response, token)
    if status in RETRY_STATUSES or status >= 500:
        wait = server_wait(response)
        if status == 503:
            wait = estimated_time(response) or wait
        raise TransientFailure(f"HTTP {status}{excerpt}", wait=wait)
    # A safety refusal is a content decision: CONTENT_BLOCKED at once, never retried nor passed down the chain.
    if refusals.stage_of(what) and refusals.is_http_refusal(status, _payload_or_none(response)):
        raise refusals.blocked(what, model or "provider", f"HTTP {status}")
    subject = f"the model {model}" if model else "the model"
    if status in UNSERVED_STATUSES or (status == 400 and _says_unserved(response)):
        raise ModelUnavailable(f"{subject} is not served: HTTP {status}{excerpt}")
    raise ProviderError(
        f"the provider refused the request: HTTP {status}{excerpt}", code="PROVIDER_REJECTED", retryable=False
    )


def _payload_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text if "text" in response.headers.get("Content-Type", "") else None


def server_wait(response: requests.Response) -> float | None:
    """How long the service asked us to wait: Retry-After, else RateLimit's t when r=0."""
    return retry_after(response.headers.get("Retry-After")) or ratelimit_reset(response.headers.get("RateLimit"))


def retry_after(value: str | None) -> float | None:
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


def ratelimit_reset(value: str | None) -> float | None:
    """`t` of the first exhausted (`r=0`) policy of an IETF RateLimit header, e.g. `"default";r=0;t=30`."""
    if not value:
        return None
    for item in value.split(","):
        params = dict(_RATELIMIT_PARAM.findall(item))
        if params.get("r") == "0" and "t" in params:
            return float(params["t"])
    return None


def estimated_time(response: requests.Response) -> float | None:
    """The serverless API answers 503 with {"error": "... is currently loading", "estimated_time": s}."""
    try:
        value = response.json().get("estimated_time")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def _says_unserved(response: requests.Response) -> bool:
    try:
        payload = response.json()
    except ValueError:
        return bool(_UNSERVED_TEXT.search(response.text or ""))
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        if str(error.get("code", "")).lower() in UNSERVED_CODES:
            return True
        error = error.get("message", "")
    return bool(_UNSERVED_TEXT.search(str(error)))


def error_excerpt(response: requests.Response, token: str) -> str:
    """A short, token-free, inert excerpt of an error body for the message (which goes to the logs;
    users read the code's own words, reimagine.errors.PROVIDER_MESSAGES)."""
    try:
        payload = response.json()
        detail = payload.get("error", payload) if isinstance(payload, dict) else payload
        text = detail.get("message", str(detail)) if isinstance(detail, dict) else str(detail)
    except ValueError:
        text = response.text if "text" in response.headers.get("Content-Type", "") else ""
    text = for_log(text, secret=token)
    return f" ({text})" if text else ""


def json_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise bad("the answer is not JSON") from None


def chat_text(payload: Any) -> str:
    """The assistant's text of an OpenAI-style chat completion; content parts are joined."""
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise bad("the chat completion has no message content") from None
    if isinstance(content, list):  # some servers answer with content parts
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        if not all(isinstance(text, str) for text in texts if text is not None):
            raise bad("a content part of the chat completion is not text")
        content = " ".join(text for text in texts if text)
    if not isinstance(content, str):
        raise bad("the chat completion content is not text")
    return content


def bad(message: str) -> ProviderError:
    return ProviderError(message, code="PROVIDER_BAD_RESPONSE", retryable=True)


def chat_caption(
    client: HttpClient, url: str, *, model: str, image: ModelInput, deadline: Deadline, **extra: Any
) -> str:
    """Ask an OpenAI-style `/chat/completions` for a caption, the image inline as a data URL (the
    protocol of the Hugging Face router and of every OpenAI-compatible server alike)."""
    encoded = base64.b64encode(image.data).decode("ascii")
    body = {
        "model": model,  # first, so a router can route from a prefix of the body
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": CAPTION_INSTRUCTION},
                    {"type": "image_url", "image_url": {"url": f"data:{image.media_type};base64,{encoded}"}},
                ],
            }
        ],
        "max_tokens": 120,
        **extra,
        "temperature": 0.2,
    }
    response = client.request("POST", url, json=body, deadline=deadline, what="caption", model=model)
    payload = json_body(response)
    if refusals.chat_refused(payload):
        raise refusals.blocked("caption", model, "content_filter")
    caption = " ".join(chat_text(payload).split())[:MAX_CAPTION_CHARS].strip()
    if not caption:
        raise bad("the model returned an empty caption")
    return caption


def b64_json_image(payload: Any) -> bytes:
    """The image bytes of an OpenAI-style images answer, `{"data": [{"b64_json": ...}]}` (OpenAI and
    the servers that copy it, nscale and together on the Hugging Face router)."""
    try:
        encoded = payload["data"][0]["b64_json"]
    except (KeyError, IndexError, TypeError):
        raise bad("the image answer has no data[0].b64_json") from None
    if not isinstance(encoded, str):
        raise bad("the image answer's b64_json is not a string")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise bad("the returned image is not valid base64") from None
