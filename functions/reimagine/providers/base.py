"""The two interfaces every provider implements, and what passes through them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

# What every captioning model is asked, whichever provider serves it.
CAPTION_INSTRUCTION = (
    "Describe this photo in one sentence of at most 30 words: the main subject, the setting, "
    "the colours and the mood. Reply with the sentence only."
)


@dataclass(frozen=True)
class ModelInput:
    """An image prepared for a captioning model: bounded in size, always JPEG."""

    data: bytes
    width: int
    height: int
    source_width: int
    source_height: int
    source_format: str  # "JPEG", "PNG", "WEBP", "GIF"
    media_type: str = "image/jpeg"


class Deadline:
    """How long the current invocation has left; providers stop retrying before it runs out."""

    def __init__(self, remaining_seconds: Callable[[], float]) -> None:
        self._remaining = remaining_seconds

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        end = clock() + seconds
        return cls(lambda: end - clock())

    @classmethod
    def from_lambda_context(cls, context: object, fallback_seconds: float = 60.0) -> Deadline:
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining_ms):
            return cls(lambda: remaining_ms() / 1000.0)
        return cls.after(fallback_seconds)

    def remaining(self) -> float:
        return max(0.0, self._remaining())


class Captioner(Protocol):
    """One model that describes an image in one sentence. Raises reimagine.errors.ProviderError on
    failure (ModelUnavailable when this model cannot be used at all)."""

    name: str  # the provider
    model: str  # the model id, as the record names it

    def caption(self, image: ModelInput, deadline: Deadline) -> str: ...


class ImageGenerator(Protocol):
    """One model that renders a picture from a prompt; returns PNG bytes. Raises ProviderError on
    failure (ModelUnavailable when this model cannot be used at all)."""

    name: str
    model: str

    def generate(self, prompt: str, deadline: Deadline) -> bytes: ...
