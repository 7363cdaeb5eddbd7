"""Notify step: the one email a finished request gets, with its result link or its reason for failing.

Notification is a step like the others. The record is claimed with a conditional write before the
email is sent (`notify_claimed_until`, a lease), so two deliveries of one stream record cannot both
send; `notified_at` is recorded after. A transient SES failure gives the claim back and raises, so
the stream retries (and, past its retries, the sweeper re-drives); a permanent refusal is recorded
as `notify_error` and never retried.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from reimagine import mail, storage
from reimagine.capability import delete_key
from reimagine.confirmation import UNCONFIRMED_CODE
from reimagine.models import Status, mask_email, utcnow
from reimagine.observability import logger, metrics, tracer
from reimagine.quota import hashing_key
from reimagine.steps.claims import StepOutcome
from reimagine.styles import catalogue
from reimagine.suppression import SuppressionList

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ses import SESClient

    from reimagine.config import Settings
    from reimagine.confirmation import Confirmations, MailLinks
    from reimagine.records import RequestStore

SUPPRESSED_CODE = "ADDRESS_SUPPRESSED"

# Longer than the function may run (its Timeout), so a claim outlives the worker that holds it.
DEFAULT_LEASE_SECONDS = 60

# Emails SES took whose `notified_at` could not be written yet, in this container. The stream retries
# a failed record on the same shard, so the retry usually lands here and only records, never resends.
_sent_unrecorded: set[str] = set()

_ADDRESS = re.compile(r"[^\s@:;,<>\"']+@[^\s@:;,<>\"']+")


@tracer.capture_method(capture_response=False)
def notify_user(
    request_id: str,
    *,
    store: RequestStore,
    s3: S3Client,
    ses: SESClient,
    settings: Settings,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    suppressions: SuppressionList | None = None,
    confirmations: Confirmations | None = None,
    links: MailLinks | None = None,
) -> StepOutcome:
    """Send the one email a finished request gets; a redelivery finds it claimed or notified and stops."""
    if request_id in _sent_unrecorded:
        return _record_sent(store, request_id, "sent earlier; recorded now")
    record = store.claim_notification(request_id, lease_seconds=lease_seconds)
    if record is None:
        return StepOutcome(request_id, "skipped", "not final, already notified, refused or claimed")
    assert record.notify_claimed_until is not None
    try:
        # The address bounced or complained after this request was made: it gets no more mail, for good.
        if suppressions is not None and suppressions.is_suppressed(record.email):
            store.reject_notification(request_id, SUPPRESSED_CODE, "the address bounced or complained; no more mail")
            return StepOutcome(request_id, "rejected", SUPPRESSED_CODE)
        # Only people who asked get mail: a request that failed before its address was confirmed
        # (a junk upload for someone else's address) ends without any.
        if confirmations is not None and not confirmations.is_confirmed(record.email):
            store.reject_notification(request_id, UNCONFIRMED_CODE, "the address was never confirmed; no mail")
            return StepOutcome(request_id, "rejected", UNCONFIRMED_CODE)
        link = None
        if record.status is Status.COMPLETED and record.result_key:
            link = storage.presigned_result(
                s3,
                bucket=settings.results_bucket,
                key=record.result_key,
                expires_in=settings.result_url_ttl_seconds,
            )
        message = mail.compose(
            record,
            link,
            api_base_url=settings.api_base_url,
            delete_key=delete_key(record.id, hashing_key(settings)),
            style_name=catalogue(settings.styles).for_record(record.style).name,
        )
        mail.send(
            ses,
            sender=settings.sender_email,
            to=record.email,
            message=message,
            configuration_set=settings.mail_configuration_set,
            unsubscribe_url=links.unsubscribe(record.email) if links is not None else "",
        )
    except ClientError as exc:
        failure = mail.send_failure(exc, sender=settings.sender_email)
        if failure.permanent:
            store.reject_notification(request_id, failure.code, _masked(failure.message))
            logger.warning("SES refused the email for good", extra={"code": failure.code})
            return StepOutcome(request_id, "rejected", failure.code)
        store.release_notification(request_id, claimed_until=record.notify_claimed_until)
        raise
    except Exception:
        store.release_notification(request_id, claimed_until=record.notify_claimed_until)
        raise
    _sent_unrecorded.add(request_id)
    # The time the user waited, request to email (the upload follows the request within seconds):
    # the dashboard's p50/p95. Counted once, when SES took the email.
    waited = (utcnow() - record.created_at).total_seconds()
    metrics.add_metric(name="EndToEndSeconds", unit=MetricUnit.Seconds, value=max(waited, 0.0))
    return _record_sent(store, request_id, record.status.value)


def _record_sent(store: RequestStore, request_id: str, detail: str) -> StepOutcome:
    """Write `notified_at`; if that fails, the id stays in the ledger and the error propagates."""
    if store.mark_notified(request_id) is None:
        logger.warning("notified_at was already set by another delivery")
    _sent_unrecorded.discard(request_id)
    return StepOutcome(request_id, "done", detail)


def _masked(text: str) -> str:
    """SES messages may quote addresses; the record keeps them masked, like everything shown."""
    return _ADDRESS.sub(lambda m: mask_email(m.group(0)), text)[:500]
