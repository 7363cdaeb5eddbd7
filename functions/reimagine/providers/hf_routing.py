"""Which Inference Provider serves a model for a task, from the Hub's `inferenceProviderMapping`.

Mirrors huggingface_hub 1.29.0.dev0 (commit ee0a4510f4bc15e26cb722be2efc2bdb01383ca0, 2026-08-20):
`hf_api.ModelInfo` (the mapping arrives as a list, or in the older dict form keyed by provider;
both are read), `inference/_providers/_common.py::_fetch_inference_provider_mapping` and
`inference/_providers/__init__.py::get_provider_helper`, where `provider="auto"` takes the Hub's
order. Unlike the client, which takes the first provider whatever it is, `choose` skips providers
this code cannot speak and mappings that are not `live`, so one unsupported provider at the head of
the list does not stop the model from being used.

The Hub lists vision-language chat models under the task `conversational` (the client's
chat_completion requires exactly that task), so there is no `image-text-to-text` alias here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from reimagine.errors import ModelUnavailable, ProviderError
from reimagine.providers.http import error_excerpt

if TYPE_CHECKING:
    from reimagine.providers.http import HttpClient

# The providers this code speaks per task (huggingface.py has the protocol of each).
SUPPORTED: dict[str, set[str]] = {
    # Chat goes to the router's OpenAI-compatible /v1/chat/completions, which forwards to any of them.
    "conversational": {
        "baseten",
        "cerebras",
        "cohere",
        "deepinfra",
        "featherless-ai",
        "fireworks-ai",
        "groq",
        "hf-inference",
        "novita",
        "nscale",
        "openai",
        "ovhcloud",
        "publicai",
        "scaleway",
        "together",
        "zai-org",
    },
    "text-to-image": {"hf-inference", "nscale", "together"},
}
HUB_TIMEOUT = (3.05, 10.0)


@dataclass(frozen=True)
class ProviderMapping:
    provider: str
    provider_id: str  # the model's id on the provider's side
    task: str
    status: str  # "live", "staging" or "error"


def parse_mapping(payload: Any) -> list[ProviderMapping]:
    """The mappings of a model-info answer, in the Hub's order; malformed entries are skipped."""
    mapping = payload.get("inferenceProviderMapping") if isinstance(payload, dict) else None
    if isinstance(mapping, dict):  # older form: {provider: {providerId, task, status}}
        entries = [{**value, "provider": name} for name, value in mapping.items() if isinstance(value, dict)]
    elif isinstance(mapping, list):
        entries = [value for value in mapping if isinstance(value, dict)]
    else:
        entries = []
    found = []
    for entry in entries:
        provider, provider_id, task = entry.get("provider"), entry.get("providerId"), entry.get("task")
        if isinstance(provider, str) and isinstance(provider_id, str) and isinstance(task, str):
            found.append(ProviderMapping(provider, provider_id, task, str(entry.get("status", ""))))
    return found


def fetch_mapping(
    hub_url: str, model: str, token: str | None, session: requests.Session | None = None
) -> list[ProviderMapping]:
    """GET `{hub_url}/api/models/{model}?expand[]=inferenceProviderMapping` (one call, no retries:
    `reimagine doctor` and the providers both call this). A model the Hub does not know (404) has
    no mapping; any other failure is a ProviderError, with the token never in its message."""
    http = session or requests.Session()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = http.get(
            f"{hub_url.rstrip('/')}/api/models/{model}",
            params={"expand[]": "inferenceProviderMapping"},
            headers=headers,
            timeout=HUB_TIMEOUT,
            allow_redirects=False,  # the token goes to the Hub only; a 3xx is an answer like any other
        )
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise ProviderError(f"the Hub could not be reached ({reason})", code="PROVIDER_UNAVAILABLE") from None
    if response.status_code == 404:
        return []
    if response.status_code != 200:
        transient = response.status_code >= 500 or response.status_code == 429
        raise ProviderError(
            f"the Hub answered HTTP {response.status_code} for {model}{error_excerpt(response, token or '')}",
            code="PROVIDER_UNAVAILABLE" if transient else "PROVIDER_REJECTED",
            retryable=transient,
        )
    try:
        return parse_mapping(response.json())
    except ValueError:
        raise ProviderError("the Hub's model info is not JSON", code="PROVIDER_BAD_RESPONSE") from None


def choose(mappings: list[ProviderMapping], task: str) -> ProviderMapping | None:
    """The first live mapping for `task` among the providers this code speaks, in the Hub's order."""
    speakable = SUPPORTED.get(task, set())
    return next((m for m in mappings if m.task == task and m.status == "live" and m.provider in speakable), None)


def resolve(client: HttpClient, hub_url: str, model: str, task: str, deadline: Any) -> ProviderMapping:
    """The mapping to call for `model`, through the retrying client; ModelUnavailable when none is live."""
    response = client.request(
        "GET",
        f"{hub_url.rstrip('/')}/api/models/{model}",
        params={"expand[]": "inferenceProviderMapping"},
        deadline=deadline,
        what="provider lookup",
        model=model,
    )
    try:
        mappings = parse_mapping(response.json())
    except ValueError:
        raise ProviderError("the Hub's model info is not JSON", code="PROVIDER_BAD_RESPONSE") from None
    chosen = choose(mappings, task)
    if chosen is None:
        listed = ", ".join(f"{m.provider}:{m.task}:{m.status}" for m in mappings) or "no provider"
        raise ModelUnavailable(f"no live provider this code speaks serves {model} for {task} (Hub lists {listed})")
    return chosen
