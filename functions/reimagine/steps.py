"""What the event-driven steps share: claim the record, do the work, move it on or end it.

Each step claims the record with a conditional write before doing work, so a duplicate delivery
finds nothing to do. Failures that retrying cannot fix end the request FAILED (the user is told);
transient ones give the claim back and raise, so the event source retries, up to `max_attempts`; an
unexpected error on the last attempt ends the request FAILED (INTERNAL_ERROR) and still raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reimagine.errors import PipelineError
from reimagine.models import RequestRecord, Status

if TYPE_CHECKING:
    from reimagine.records import RequestStore

# What the user reads when a bug or an outage ends a request (code INTERNAL_ERROR, the default).
INTERNAL_MESSAGE = "an internal error stopped this request; please send the photo again"

# How long past the function's own deadline a claim stays exclusive.
LEASE_MARGIN_SECONDS = 30


@dataclass
class StepOutcome:
    """What a step did, for the handler's log line and metrics."""

    request_id: str
    outcome: str  # "done", "skipped", "failed", "retry"
    detail: str = ""


def run_claimed(
    store: RequestStore,
    record: RequestRecord,
    *,
    from_status: Status,
    working: Status,
    max_attempts: int,
    work: Callable[[], dict[str, Any]],
    to: Status,
) -> StepOutcome:
    """Do `work` for a claimed record and move it on; end it FAILED or give it back when work fails."""
    if record.attempts > max_attempts:
        store.fail(record.id, "RETRIES_EXHAUSTED", f"gave up after {max_attempts} attempts")
        return StepOutcome(record.id, "failed", "RETRIES_EXHAUSTED")
    try:
        fields = work()
    except Exception as exc:
        # A bug or an AWS error is retried like a transient provider failure; on the last attempt it
        # ends the request where the user is told, and still propagates for the alarms.
        error = exc if isinstance(exc, PipelineError) else PipelineError(INTERNAL_MESSAGE, retryable=True)
        if error.retryable and record.attempts < max_attempts:
            store.release(record.id, working=working, back_to=from_status)
            raise
        store.fail(record.id, error.code, error.message)
        if error is not exc:
            raise
        return StepOutcome(record.id, "failed", error.code)
    store.advance(record.id, from_status=working, to=to, **fields)
    return StepOutcome(record.id, "done")
