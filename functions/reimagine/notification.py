"""Notify step: the one email a finished request gets, with its result link or its reason for failing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reimagine import mail, storage
from reimagine.models import Status
from reimagine.observability import logger
from reimagine.steps import StepOutcome
from reimagine.suppression import SuppressionList

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ses import SESClient

    from reimagine.config import Settings
    from reimagine.records import RequestStore


def notify_user(
    request_id: str,
    *,
    store: RequestStore,
    s3: S3Client,
    ses: SESClient,
    settings: Settings,
    suppressions: SuppressionList | None = None,
) -> StepOutcome:
    """Send the one email a finished request gets; a redelivery finds `notified_at` set and stops."""
    record = store.get(request_id)
    if record is None or record.notified_at is not None or not record.status.is_final:
        return StepOutcome(request_id, "skipped", "nothing to notify")
    # The address bounced or complained after this request was made: it gets no more mail.
    if suppressions is not None and suppressions.is_suppressed(record.email):
        return StepOutcome(request_id, "skipped", "address suppressed")
    link = None
    if record.status is Status.COMPLETED and record.result_key:
        link = storage.presigned_result(
            s3,
            bucket=settings.results_bucket,
            key=record.result_key,
            expires_in=settings.result_url_ttl_seconds,
        )
    message = mail.compose(record, link, api_base_url=settings.api_base_url)
    mail.send(
        ses,
        sender=settings.sender_email,
        to=record.email,
        message=message,
        configuration_set=settings.mail_configuration_set,
    )
    if store.mark_notified(request_id) is None:
        logger.warning("notified_at was already set by another delivery")
    return StepOutcome(request_id, "done", record.status.value)
