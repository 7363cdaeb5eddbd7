"""Content moderation at three stages: the upload (before any caption call), the caption (before it
is stored and becomes a prompt) and the generated picture (before it is stored).

The moderator is chosen by configuration (`MODERATION`) and its module imported only when chosen:
`none` (no check), `offline` (Yahoo's open_nsfw on CPU, from a layer), `openai` (the moderation
endpoint of the OpenAI-compatible server) and `rekognition` (Rekognition for images, Comprehend for
text). A flagged item ends the request FAILED with CONTENT_BLOCKED and `details.stage`; a moderator
that cannot answer raises MODERATION_UNAVAILABLE, retried like a provider outage and never passed
unchecked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, Literal, Protocol

from reimagine.errors import ContentBlocked, PipelineError
from reimagine.observability import logger

if TYPE_CHECKING:
    from reimagine.config import Settings
    from reimagine.model_call import Deadline
    from reimagine.models import RequestRecord

Stage = Literal["upload", "caption", "picture"]
STAGES: tuple[Stage, ...] = ("upload", "caption", "picture")

# What the user reads when the moderator cannot answer (code MODERATION_UNAVAILABLE).
UNAVAILABLE_MESSAGE = "the content check could not be reached; please send the photo again later"

# moderator name -> module under reimagine.moderation exposing build(settings)
_MODULES = {"offline": "offline", "openai": "openai", "rekognition": "rekognition"}


@dataclass(frozen=True)
class Verdict:
    """A moderator's answer: flagged or not, and the names of the categories that tripped it (never
    any of the content itself: these reach logs)."""

    flagged: bool
    categories: tuple[str, ...] = ()


class Moderator(Protocol):
    """Checks an image (JPEG or PNG bytes) or a text. Raises ModerationUnavailable when it cannot."""

    name: str

    def check_image(self, data: bytes, media_type: str, deadline: Deadline) -> Verdict: ...

    def check_text(self, text: str, deadline: Deadline) -> Verdict: ...


class ModerationUnavailable(PipelineError):
    """The moderator could not answer (outage, throttling, bad credentials). Retryable by default:
    the step retries like a provider outage, then fails with this code; content is never passed
    unchecked."""

    code = "MODERATION_UNAVAILABLE"
    retryable = True

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(UNAVAILABLE_MESSAGE, retryable=retryable)
        self.reason = reason  # for logs: never shown to the user


class NoModeration:
    """`none`: everything passes. doctor warns when a public stack runs with it."""

    name = "none"

    def check_image(self, data: bytes, media_type: str, deadline: Deadline) -> Verdict:
        return Verdict(False)

    def check_text(self, text: str, deadline: Deadline) -> Verdict:
        return Verdict(False)


def build_moderator(settings: Settings) -> Moderator:
    """The configured moderator; its module (and its dependencies) imported only when chosen."""
    if settings.moderation == "none":
        return NoModeration()
    try:
        module = import_module(f"reimagine.moderation.{_MODULES[settings.moderation]}")
    except KeyError:
        raise ValueError(
            f"unknown moderator {settings.moderation!r}; choose none or one of {sorted(_MODULES)}"
        ) from None
    moderator: Moderator = module.build(settings)
    return moderator


def screen_image(moderator: Moderator, data: bytes, media_type: str, *, stage: Stage, deadline: Deadline) -> None:
    """Raise ContentBlocked(stage) when the moderator flags the image."""
    _decide(moderator.check_image(data, media_type, deadline), moderator.name, stage)


def screen_text(moderator: Moderator, text: str, *, stage: Stage, deadline: Deadline) -> None:
    """Raise ContentBlocked(stage) when the moderator flags the text."""
    _decide(moderator.check_text(text, deadline), moderator.name, stage)


def _decide(verdict: Verdict, by: str, stage: Stage) -> None:
    if verdict.flagged:
        raise ContentBlocked(stage, by=by, reasons=verdict.categories)


def counted(work: Callable[[RequestRecord], dict[str, Any]]) -> Callable[[RequestRecord], dict[str, Any]]:
    """`work`, with each block it ends in logged and counted (metric ContentBlocked, by stage)."""

    def counting(record: RequestRecord) -> dict[str, Any]:
        try:
            return work(record)
        except ContentBlocked as blocked:
            count_block(blocked)
            raise

    return counting


def count_block(blocked: ContentBlocked) -> None:
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    # Category names only: what was in the photo, caption or picture never reaches a log.
    logger.warning(
        "content blocked", extra={"stage": blocked.stage, "by": blocked.by, "categories": list(blocked.reasons)}
    )
    with single_metric(name="ContentBlocked", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="stage", value=blocked.stage)
