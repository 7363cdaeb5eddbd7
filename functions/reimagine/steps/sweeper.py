"""The sweeper's logic: requests stuck in a non-final state are re-driven when that is safe, else ended.

Every step claims its record with a conditional write, so re-emitting an event is always safe: at
worst the step finds nothing to do. A step whose worker died (its lease expired) and whose event
source gave up is re-driven from what S3 and the table hold: GENERATING is given back to CAPTIONED
(the stream emits it again), CAPTIONING has its upload announced again by S3 (the object copied onto
itself, an ObjectCreated:Copy event for CaptionFunction). The step's own attempt count still bounds
the work: a re-drive recovers a lost event, it does not grant more attempts. What has been re-driven
too often ends FAILED with code STUCK, which the Notify filter picks up, so the user is told.
PENDING_UPLOAD is never swept: a photo that never came simply expires through the table's TTL.

Finished requests (COMPLETED, FAILED) never notified and never refused are emails that did not go
out (SES refused for a while, the stream gave up): a touch hands them to Notify again, at most
`max_redrives` times; after that the notification is given up (`notify_error`, NOTIFY_ABANDONED).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from reimagine.lifecycle import FINISHED, SWEPT
from reimagine.models import Status
from reimagine.observability import logger
from reimagine.storage import UploadGone

if TYPE_CHECKING:
    from reimagine.records import RequestStore, StuckCandidate

STUCK_CODE = "STUCK"
UPLOAD_GONE_CODE = "UPLOAD_MISSING"
UPLOAD_GONE_MESSAGE = "Describing your photo stalled, and the photo is no longer stored. Please send it again."
NOTIFY_ABANDONED_CODE = "NOTIFY_ABANDONED"
UNCONFIRMED_CODE = "CONFIRMATION_EXPIRED"
UNCONFIRMED_MESSAGE = "The address was not confirmed in time and the photo is no longer kept. Please send it again."
# Unsent emails are looked for among requests touched this recently: each read stays proportional to
# recent traffic, not to everything the table keeps. Every re-drive moves a request back into it.
NOTIFY_LOOKBACK = timedelta(days=1)

# What the user reads in the failure email, by the status the request stalled in.
STUCK_MESSAGES = {
    Status.CAPTIONING: "Describing your photo stalled after several tries. Please send it again.",
    Status.CAPTIONED: "Drawing your new picture did not start after several tries. Please send the photo again.",
    Status.GENERATING: "Drawing your new picture stalled after several tries. Please send the photo again.",
}


# Asks S3 to announce a request's upload again (ObjectCreated:Copy); raises UploadGone if it is gone.
Reannounce = Callable[[str], None]


class Action(StrEnum):
    REDRIVE = "redriven"
    FAIL = "failed"
    SKIP = "skipped"
    NOTIFY_REDRIVE = "notify_redriven"
    NOTIFY_ABANDON = "notify_abandoned"


@dataclass(frozen=True)
class Decision:
    action: Action
    to: Status | None = None
    reason: str = ""


def decide(candidate: StuckCandidate, *, now_epoch: int, max_redrives: int) -> Decision:
    """What to do with one stuck request; pure, so every branch is testable without DynamoDB."""
    if candidate.lease_until is not None and candidate.lease_until >= now_epoch:
        return Decision(Action.SKIP, reason="a worker still holds the lease")
    if candidate.redrives >= max_redrives:
        return Decision(Action.FAIL, reason=f"re-driven {candidate.redrives} times already")
    if candidate.status is Status.CAPTIONING:
        # The worker died and the upload event's retries are spent: touched (lease removed), then the
        # upload announced again, so a new delivery of CaptionFunction may claim it.
        return Decision(Action.REDRIVE, to=Status.CAPTIONING, reason="upload announced again")
    # CAPTIONED: its stream record was lost or gave up; a touch emits it again.
    # GENERATING with an expired lease: the worker died; giving the claim back emits CAPTIONED again.
    return Decision(Action.REDRIVE, to=Status.CAPTIONED, reason=f"from {candidate.status.value}")


def decide_notification(candidate: StuckCandidate, *, now_epoch: int, max_redrives: int) -> Decision:
    """What to do with a finished request whose email never went out (nor was refused)."""
    claimed = candidate.notify_claimed_until
    if claimed is not None and claimed >= now_epoch:
        return Decision(Action.SKIP, reason="a notify worker still holds the claim")
    if candidate.notify_redrives >= max_redrives:
        return Decision(Action.NOTIFY_ABANDON, reason=f"email re-driven {candidate.notify_redrives} times already")
    return Decision(Action.NOTIFY_REDRIVE, to=candidate.status, reason="email never sent")


@dataclass
class SweepReport:
    outcomes: Counter[str] = field(default_factory=Counter)
    examined: int = 0

    def summary(self) -> dict[str, int]:
        return {"examined": self.examined, **self.outcomes}


def sweep(
    store: RequestStore,
    *,
    now: datetime,
    stuck_after_seconds: int,
    max_redrives: int,
    max_items: int,
    reannounce: Reannounce,
    unconfirmed_after_seconds: int | None = None,
) -> SweepReport:
    """One pass over the stuck requests, oldest first, handling at most `max_items` of them.

    Each handled request leaves the stuck set (its status or updated_at changes), so successive runs
    make progress however large the backlog; a write that loses a race (`raced`) is simply left for
    the step that won it.
    """
    cutoff = now - timedelta(seconds=stuck_after_seconds)
    now_epoch = int(now.timestamp())
    report = SweepReport()
    for status in SWEPT:
        budget = max_items - report.examined
        if budget <= 0:
            break
        for candidate in store.stuck(status, updated_before=cutoff, limit=budget):
            report.examined += 1
            decision = decide(candidate, now_epoch=now_epoch, max_redrives=max_redrives)
            if decision.action is Action.REDRIVE:
                assert decision.to is not None
                done = store.redrive(candidate, to=decision.to, max_redrives=max_redrives)
                if done and decision.to is Status.CAPTIONING:
                    outcome = _reannounce(store, candidate, reannounce)
                    if outcome is not None:
                        report.outcomes[outcome] += 1
                        continue
            elif decision.action is Action.FAIL:
                done = store.fail_stuck(candidate, STUCK_CODE, STUCK_MESSAGES[candidate.status])
            else:
                report.outcomes[Action.SKIP.value] += 1
                continue
            report.outcomes[decision.action.value if done else "raced"] += 1
    if unconfirmed_after_seconds is not None:
        _end_unconfirmed(store, report, before=now - timedelta(seconds=unconfirmed_after_seconds), max_items=max_items)
    for status in FINISHED:
        budget = max_items - report.examined
        if budget <= 0:
            break
        unsent = store.unnotified(status, updated_before=cutoff, updated_since=cutoff - NOTIFY_LOOKBACK, limit=budget)
        for candidate in unsent:
            report.examined += 1
            decision = decide_notification(candidate, now_epoch=now_epoch, max_redrives=max_redrives)
            if decision.action is Action.NOTIFY_REDRIVE:
                done = store.redrive_notification(candidate, max_redrives=max_redrives)
            elif decision.action is Action.NOTIFY_ABANDON:
                done = store.abandon_notification(
                    candidate, NOTIFY_ABANDONED_CODE, f"the email was not sent after {max_redrives} re-drives"
                )
            else:
                report.outcomes[Action.SKIP.value] += 1
                continue
            report.outcomes[decision.action.value if done else "raced"] += 1
    return report


def _end_unconfirmed(store: RequestStore, report: SweepReport, *, before: datetime, max_items: int) -> None:
    """End requests whose address was not confirmed within the confirmation window (UploadRetentionDays):
    their upload is gone with the bucket's lifecycle rule. FAILED, so the request reads as ended; Notify
    sends nothing to an address that never confirmed."""
    budget = max_items - report.examined
    if budget <= 0:
        return
    for candidate in store.stuck(Status.AWAITING_CONFIRMATION, updated_before=before, limit=budget):
        report.examined += 1
        done = store.fail_stuck(candidate, UNCONFIRMED_CODE, UNCONFIRMED_MESSAGE)
        report.outcomes["unconfirmed_ended" if done else "raced"] += 1


def _reannounce(store: RequestStore, candidate: StuckCandidate, reannounce: Reannounce) -> str | None:
    """Announce a touched CAPTIONING request's upload again; None when it was, else what happened.

    The touch came first (it is the conditional write that decides), so a failure here leaves the
    request touched and counted: the next sweep past StuckAfterSeconds tries again or ends it."""
    try:
        reannounce(candidate.id)
    except UploadGone:
        store.fail(candidate.id, UPLOAD_GONE_CODE, UPLOAD_GONE_MESSAGE)
        return Action.FAIL.value
    except Exception:
        logger.exception("could not announce the upload again", extra={"request_id": candidate.id})
        return "reannounce_failed"
    return None
