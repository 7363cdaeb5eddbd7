"""Errors with a stable code the user sees: those that end a pipeline step, and the API's refusals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ApiError(Exception):
    """A request the API refuses: answered with `status` and `{"error": {"code", "message", "details"?}}`.

    Raised by the steps behind the routes (quota, suppression, intake, ...), answered in one place
    (`reimagine.handlers.api_app`), so every refusal has the same shape. `headers` go with the answer
    (e.g. Retry-After); `counted_as` names the metrics counting one each time it is answered.
    """

    counted_as: tuple[str, ...] = ()

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


class PipelineError(Exception):
    """A step failed. `retryable` says whether trying the same input again can succeed."""

    code = "INTERNAL_ERROR"
    retryable = False
    # Kept with the code on the record and shown by the API (`error.details`), e.g. {"stage": "upload"}.
    details: dict[str, str] | None = None

    def __init__(self, message: str, *, code: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    @property
    def public_message(self) -> str:
        """What the user reads (the record's `error.message`, the API, the email)."""
        return self.message


class InvalidImage(PipelineError):
    """The uploaded bytes are not an image we accept (codes: NOT_AN_IMAGE, IMAGE_TRUNCATED,
    UNSUPPORTED_IMAGE_TYPE, IMAGE_TOO_LARGE, IMAGE_TOO_COMPLEX, UPLOAD_TOO_LARGE, UPLOAD_EMPTY)."""

    code = "NOT_AN_IMAGE"


class ProviderError(PipelineError):
    """A captioning or generation service failed.

    Codes: PROVIDER_UNAVAILABLE (retryable: 429, 503, 5xx, timeouts, throttling),
    PROVIDER_REJECTED (a 4xx that retrying cannot fix), PROVIDER_BAD_RESPONSE (not what was asked),
    PROVIDER_TIMEOUT (the function's time budget ran out while retrying),
    NO_MODEL_AVAILABLE (every model of a fallback chain was unavailable; not retryable).
    """

    code = "PROVIDER_UNAVAILABLE"
    retryable = True

    def __init__(
        self, message: str, *, code: str | None = None, retryable: bool | None = None, public: str | None = None
    ) -> None:
        super().__init__(message, code=code, retryable=retryable)
        self._public = public

    @property
    def public_message(self) -> str:
        """Our words for the code: `message` quotes what a provider answered (error bodies, refusal
        reasons), which may hold links, bidi overrides or anything else, so it goes to the logs only."""
        return self._public or PROVIDER_MESSAGES.get(self.code, PROVIDER_MESSAGES["PROVIDER_UNAVAILABLE"])


# What the user reads when a captioning or picture service fails, per code.
PROVIDER_MESSAGES = {
    "PROVIDER_UNAVAILABLE": "the AI service was unavailable; please send the photo again later",
    "PROVIDER_TIMEOUT": "the AI service did not answer in time; please send the photo again later",
    "PROVIDER_REJECTED": "the AI service refused to work on this photo; try another photo",
    "PROVIDER_BAD_RESPONSE": "the AI service gave an answer that could not be used; please send the photo again",
    "MODEL_UNAVAILABLE": "the AI model is not available at the moment; please send the photo again later",
    "NO_MODEL_AVAILABLE": "no AI model is available at the moment; please send the photo again later",
}


class ModelUnavailable(ProviderError):
    """One model is not served, has reached end of life, or this account has no access to it.

    Retrying the same model cannot help; a fallback chain moves on to its next model. When every
    model of a chain is unavailable the step fails with NO_MODEL_AVAILABLE, naming the models tried.
    """

    code = "MODEL_UNAVAILABLE"
    retryable = False


# What the user reads when content is blocked: the same words at every stage, quoting nothing of
# the photo, the caption or the picture.
BLOCKED_MESSAGE = "this photo could not be processed: it did not pass the content check"


class ContentBlocked(PipelineError):
    """A moderator, or a provider's own safety filter, refused the content at `stage` (`upload`,
    `caption` or `picture`). A content decision, not an outage: never retried, no fallback model."""

    code = "CONTENT_BLOCKED"
    retryable = False

    def __init__(self, stage: str, *, by: str, reasons: tuple[str, ...] = ()) -> None:
        super().__init__(BLOCKED_MESSAGE)
        self.stage = stage
        self.by = by  # the moderator or provider that refused: for logs and the metric, never the user
        self.reasons = reasons  # category names, never content
        self.details = {"stage": stage}
