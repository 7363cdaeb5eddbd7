"""What the event-driven steps share: claim the record, do the work, move it on or end it.

Each step claims the record with a conditional write before doing work, so a duplicate delivery
finds nothing to do. Failures that retrying cannot fix end the request FAILED (the user is told);
transient ones give the claim back and raise, so the event source retries, up to `max_attempts`; an
unexpected error on the last attempt ends the request FAILED (INTERNAL_ERROR) and still raises.

A delivery never reports success for work it did not do: one that finds another delivery's live
claim, or whose own claim was taken over by another delivery before it could save, raises LeaseHeld,
so the event source delivers it again later. The retry of a delivery whose worker died (killed, timed
out) takes the claim over at once, as the attempt it retries is over: a crash costs one attempt, not
the request. (A worker overtaken by a later attempt of its own delivery leaves the answer to that
attempt, "superseded", rather than failing and taking the step back from it in turn.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reimagine.errors import PipelineError
from reimagine.lifecycle import Divert, Step
from reimagine.models import RequestRecord
from reimagine.records import LeaseHeld

if TYPE_CHECKING:
    from reimagine.model_call import Deadline
    from reimagine.records import RequestStore

__all__ = ["LeaseHeld", "Step", "StepOutcome", "run_step"]

# What the user reads when a bug or an outage ends a request (code INTERNAL_ERROR, the default).
INTERNAL_MESSAGE = "an internal error stopped this request; please send the photo again"

# How long past the function's own deadline a claim stays exclusive.
LEASE_MARGIN_SECONDS = 30


@dataclass
class StepOutcome:
    """What a step did, for the handler's log line and metrics."""

    request_id: str
    outcome: str  # "done", "skipped", "failed", "retry", "superseded"
    detail: str = ""


def run_step(
    step: Step,
    request_id: str,
    *,
    store: RequestStore,
    deadline: Deadline,
    max_attempts: int,
    work: Callable[[RequestRecord], dict[str, Any]],
    delivery: str | None = None,
) -> StepOutcome:
    """Claim the record, do `work` and move it on; end it FAILED or give it back when work fails.

    `delivery` names the event being served (see RequestStore.claim). Raises LeaseHeld when another
    delivery holds the step, so the event source retries this one later."""
    lease = int(deadline.remaining()) + LEASE_MARGIN_SECONDS
    record = store.claim(
        request_id, from_status=step.waiting, working=step.working, lease_seconds=lease, delivery=delivery
    )
    if record is None:
        return StepOutcome(request_id, "skipped", step.not_waiting)
    # Every write below holds only while this claim (its number) still holds the step.
    claim = record.attempts
    if claim > max_attempts:
        # Every attempt died before it could end the step (killed, timed out): this is the user's answer.
        message = f"Your request could not be finished after {max_attempts} tries. Please send the photo again."
        if store.fail(record.id, "RETRIES_EXHAUSTED", message, attempt=claim) is None:
            return _overtaken(store, step, record, delivery)
        return StepOutcome(record.id, "failed", "RETRIES_EXHAUSTED")
    try:
        fields = work(record)
        # Saving the result is part of the work: if it fails, the claim is given back or the request
        # ended like any other failure, never left leased so that later deliveries skip it.
        saved = store.advance(record.id, from_status=step.working, to=step.done, attempt=claim, **fields)
    except Divert as divert:
        if store.advance(record.id, from_status=step.working, to=divert.to, attempt=claim, **divert.fields) is None:
            return _overtaken(store, step, record, delivery)
        return StepOutcome(record.id, "diverted", divert.detail)
    except Exception as exc:
        # A bug or an AWS error is retried like a transient provider failure; on the last attempt it
        # ends the request where the user is told, and still propagates for the alarms.
        error = exc if isinstance(exc, PipelineError) else PipelineError(INTERNAL_MESSAGE, retryable=True)
        if error.retryable and record.attempts < max_attempts:
            store.release(record.id, working=step.working, back_to=step.waiting, attempt=claim)
            raise
        ended = store.fail(record.id, error.code, error.public_message, error.details, attempt=claim)
        if error is not exc:
            raise
        if ended is None:
            return _overtaken(store, step, record, delivery)
        return StepOutcome(record.id, "failed", error.code)
    if saved is None:
        return _overtaken(store, step, record, delivery)
    return StepOutcome(record.id, "done")


def _overtaken(store: RequestStore, step: Step, claimed: RequestRecord, delivery: str | None) -> StepOutcome:
    """This claim's write was refused: another claim took the step over while this worker ran."""
    now = store.holder(claimed.id)
    if now is None or now.status not in (step.waiting, step.working):
        # The delivery that took over has already ended the step: nothing is left undone.
        return StepOutcome(claimed.id, "skipped", "ended by the delivery that took it over")
    if now.status is step.working and delivery is not None and now.leased_by == delivery:
        # A later attempt of this same delivery holds it and will answer for the delivery.
        return StepOutcome(claimed.id, "superseded", "a later attempt of this delivery took it over")
    # Held by another delivery, or given back undone: this delivery must come again.
    raise LeaseHeld(claimed.id, now.lease_until)
