"""Notify step: the one email a finished request gets, with its result link or its reason for failing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reimagine import mail, storage
from reimagine.models import Status
from reimagine.observability import logger, tracer
from reimagine.steps import StepOutcome

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ses import SESClient

    from reimagine.config import Settings
    from reimagine.records import RequestStore


@tracer.capture_method(capture_response=False)
def notify_user(
    request_id: str, *, store: RequestStore, s3: S3Client, ses: SESClient, settings: Settings
) -> StepOutcome:
    """Send the one email a finished request gets; a redelivery finds `notified_at` set and stops."""
    record = store.get(request_id)
    if record is None or record.notified_at is not None or not record.status.is_final:
        return StepOutcome(request_id, "skipped", "nothing to notify")
    link = None
    if record.status is Status.COMPLETED and record.result_key:
        link = storage.presigned_result(
            s3,
            bucket=settings.results_bucket,
            key=record.result_key,
            expires_in=settings.result_url_ttl_seconds,
        )
    message = mail.compose(record, link, api_base_url=settings.api_base_url)
    mail.send(ses, sender=settings.sender_email, to=record.email, message=message)
    if store.mark_notified(request_id) is None:
        logger.warning("notified_at was already set by another delivery")
    return StepOutcome(request_id, "done", record.status.value)
