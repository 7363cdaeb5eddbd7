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
    from reimagine.providers.base import Deadline
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


@dataclass(frozen=True)
class Step:
    """A step's transitions: it claims records in `waiting`, holds them in `working`, ends them in `done`."""

    waiting: Status
    working: Status
    done: Status
    not_waiting: str  # why a record in any other state is skipped


def run_step(
    step: Step,
    request_id: str,
    *,
    store: RequestStore,
    deadline: Deadline,
    max_attempts: int,
    work: Callable[[RequestRecord], dict[str, Any]],
) -> StepOutcome:
    """Claim the record, do `work` and move it on; end it FAILED or give it back when work fails."""
    lease = int(deadline.remaining()) + LEASE_MARGIN_SECONDS
    record = store.claim(request_id, from_status=step.waiting, working=step.working, lease_seconds=lease)
    if record is None:
        return StepOutcome(request_id, "skipped", step.not_waiting)
    if record.attempts > max_attempts:
        store.fail(record.id, "RETRIES_EXHAUSTED", f"gave up after {max_attempts} attempts")
        return StepOutcome(record.id, "failed", "RETRIES_EXHAUSTED")
    try:
        fields = work(record)
        # Saving the result is part of the work: if it fails, the claim is given back or the request
        # ended like any other failure, never left leased so that later deliveries skip it.
        store.advance(record.id, from_status=step.working, to=step.done, **fields)
    except Exception as exc:
        # A bug or an AWS error is retried like a transient provider failure; on the last attempt it
        # ends the request where the user is told, and still propagates for the alarms.
        error = exc if isinstance(exc, PipelineError) else PipelineError(INTERNAL_MESSAGE, retryable=True)
        if error.retryable and record.attempts < max_attempts:
            store.release(record.id, working=step.working, back_to=step.waiting)
            raise
        store.fail(record.id, error.code, error.message, error.details)
        if error is not exc:
            raise
        return StepOutcome(record.id, "failed", error.code)
    return StepOutcome(record.id, "done")
