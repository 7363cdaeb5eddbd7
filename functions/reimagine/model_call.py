"""What every call to a model is given: the image prepared for it, and the time the invocation has left.

Imaging prepares a ModelInput; providers and moderators take it and a Deadline. Both sides import this
module, so neither has to import the other (imaging never imports reimagine.providers).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


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
