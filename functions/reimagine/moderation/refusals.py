"""Providers' own safety refusals, recognised so that they end the request CONTENT_BLOCKED at once
(no retry, no fallback to the next model of the chain, no alarm) instead of as an outage.

The shapes, from each provider's documentation:
- Bedrock Stability image models: a successful call whose `finish_reasons` holds "Filter reason: …"
  (prompt or output image);
- Bedrock Titan Image / Nova Canvas: a ValidationException "This request has been blocked by our
  content filters" (or "The generated image has been blocked by our content filters");
- Bedrock Converse (captions): `stopReason` "content_filtered" or "guardrail_intervened";
- OpenAI images: HTTP 400 with `error.code` "content_policy_violation" (dall-e) or
  "moderation_blocked" (gpt-image); OpenAI-style chat (OpenAI, the Hugging Face router):
  `finish_reason` "content_filter";
- Hugging Face router providers: the same OpenAI-style codes, or a 4xx whose message names an NSFW,
  content-policy or safety-filter refusal. (hf-inference's pipelines answer a filtered picture with
  a black image and no signal: that one is left to the picture moderator.)
"""

from __future__ import annotations

import re
from typing import Any

from reimagine.errors import ContentBlocked

# `what` of a provider call -> the stage its refusal blocks
_STAGE_OF = {"caption": "caption", "generate": "picture"}

REFUSAL_CODES = frozenset({"content_policy_violation", "moderation_blocked", "content_filter"})
CHAT_REFUSALS = frozenset({"content_filter"})
CONVERSE_REFUSALS = frozenset({"content_filtered", "guardrail_intervened"})
_REFUSAL_TEXT = re.compile(
    r"blocked by our content filters|content[ _-]?policy|safety (system|filter|checker)|\bnsfw\b", re.IGNORECASE
)


def stage_of(what: str) -> str | None:
    return _STAGE_OF.get(what)


def blocked(what: str, by: str, reason: str) -> ContentBlocked:
    """The ContentBlocked for a refusal of the call `what` ("caption" or "generate")."""
    return ContentBlocked(_STAGE_OF.get(what, "picture"), by=by, reasons=(reason,))


def is_stability_filter(reason: str) -> bool:
    """Bedrock Stability's `finish_reasons` entry for a filtered prompt or picture."""
    return reason.lower().startswith("filter reason")


def is_bedrock_filter(code: str, message: str) -> bool:
    """Titan Image / Nova Canvas: a ValidationException naming the content filters."""
    return code == "ValidationException" and bool(_REFUSAL_TEXT.search(message))


def is_http_refusal(status: int, payload: Any, text: str = "") -> bool:
    """An OpenAI-style 4xx error answer that is a safety refusal (OpenAI, the Hugging Face router)."""
    if not 400 <= status < 500 or status in (401, 403, 404, 429):
        return False
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        if str(error.get("code") or "").lower() in REFUSAL_CODES:
            return True
        text = str(error.get("message") or "")
    elif isinstance(error, str):
        text = error
    return bool(_REFUSAL_TEXT.search(text))


def chat_refused(payload: Any) -> bool:
    """An OpenAI-style chat completion that stopped on the provider's content filter."""
    try:
        return payload["choices"][0].get("finish_reason") in CHAT_REFUSALS
    except (KeyError, IndexError, TypeError, AttributeError):
        return False
