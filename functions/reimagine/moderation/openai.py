"""`openai`: the moderation endpoint of the OpenAI-compatible server the template already names.

`POST {base}/v1/moderations` with `{"model": "omni-moderation-latest", "input": [one text or
image_url part]}`; the image goes inline as a `data:` URL. The answer, as the OpenAI API reference
and the `openai` SDK's `types/moderation*.py` define it: `results[].flagged`, `categories`,
`category_scores` (0..1) and `category_applied_input_types` (which of text/image each score
applies to). OpenAI charges nothing for it. With no score threshold the endpoint's own `flagged`
decides; with one, any score at or above it for a category that applies to this input type flags.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from reimagine.errors import ProviderError
from reimagine.moderation import ModerationUnavailable, Verdict

if TYPE_CHECKING:
    from reimagine.config import Settings
    from reimagine.model_call import Deadline
    from reimagine.providers.http import HttpClient

NAME = "openai"


class _Result(BaseModel):
    """One of `results[]` (openai.types.Moderation), the fields this code reads."""

    flagged: bool
    category_scores: dict[str, float] = {}
    category_applied_input_types: dict[str, list[str]] = {}


class _Answer(BaseModel):
    """openai.types.ModerationCreateResponse."""

    results: list[_Result]


class OpenAiModerator:
    name = NAME

    def __init__(self, client: HttpClient, *, base_url: str, model: str, threshold: float | None = None) -> None:
        from reimagine.providers.openai import _v1

        self._client = client
        self._url = f"{_v1(base_url)}/moderations"
        self.model = model
        self.threshold = threshold

    def check_image(self, data: bytes, media_type: str, deadline: Deadline) -> Verdict:
        url = f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
        return self._check({"type": "image_url", "image_url": {"url": url}}, "image", deadline)

    def check_text(self, text: str, deadline: Deadline) -> Verdict:
        return self._check({"type": "text", "text": text}, "text", deadline)

    def _check(self, part: dict[str, Any], input_type: str, deadline: Deadline) -> Verdict:
        body = {"model": self.model, "input": [part]}
        try:
            response = self._client.request(
                "POST", self._url, json=body, deadline=deadline, what="moderation", model=self.model
            )
            answer = _Answer.model_validate_json(response.content)
        except ProviderError as exc:
            raise ModerationUnavailable(f"the moderation endpoint failed: {exc}", retryable=exc.retryable) from None
        except ValidationError:
            raise ModerationUnavailable("the moderation endpoint's answer is not a moderation result") from None
        if not answer.results:
            raise ModerationUnavailable("the moderation endpoint returned no result")
        result = answer.results[0]
        categories = tuple(
            sorted(
                name
                for name, score in result.category_scores.items()
                if input_type in result.category_applied_input_types.get(name, [input_type])
                and score >= (self.threshold if self.threshold is not None else 0.5)
            )
        )
        if self.threshold is None:
            return Verdict(result.flagged, categories)
        return Verdict(bool(categories), categories)


def build(settings: Settings) -> OpenAiModerator:
    from reimagine.providers.openai import shared_client

    return OpenAiModerator(
        shared_client(settings.openai_key_parameter),
        base_url=settings.openai_base_url,
        model=settings.openai_moderation_model,
        threshold=settings.moderation_score_threshold,
    )
