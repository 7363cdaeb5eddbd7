"""CaptionFunction: S3 ObjectCreated on `uploads/` -> validate, prepare and caption the image."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from urllib.parse import unquote_plus

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from reimagine import clients
from reimagine.config import Settings, require_settings, settings
from reimagine.confirmation import Confirmations, Mailer, MailLinks
from reimagine.model_call import Deadline
from reimagine.models import request_id_from_upload_key
from reimagine.moderation import Moderator, build_moderator
from reimagine.observability import CAPTURE_COLD_START, logger, metrics, tracer
from reimagine.providers import build_captioner
from reimagine.providers.base import Captioner
from reimagine.providers.chain import CaptionChain
from reimagine.steps.caption import caption_upload
from reimagine.steps.claims import LeaseHeld

# Checked at start: a missing one stops the container's init with a clear message.
REQUIRED_SETTINGS = ("table_name", "uploads_bucket")
require_settings(*REQUIRED_SETTINGS)


@cache
def _captioner() -> Captioner | CaptionChain:
    return build_captioner(settings())


def _confirming(cfg: Settings) -> tuple[Confirmations | None, Mailer | None]:
    """The confirmation gate, unless the operator turned it off (ConfirmAddresses=false)."""
    if not cfg.confirm_addresses:
        return None, None
    confirmations = Confirmations.from_settings(clients.dynamodb(), cfg)
    links = MailLinks(cfg.api_base_url, confirmations.key)
    return confirmations, Mailer(clients.ses(), cfg.sender_email, cfg.mail_configuration_set, links)


def delivery_of(record: S3EventRecord) -> str:
    """The identity of one S3 event, as the claim records it. Lambda retries an event that failed
    (killed, timed out) with the very same payload, after that attempt ended, so the retry may take
    its claim over; a new event for the object (another upload, the sweeper's re-announcement) has
    another time and sequencer, so it may not while that claim is live."""
    canonical = json.dumps(record.raw_event, sort_keys=True, separators=(",", ":"))
    return "s3:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


@cache
def _moderator() -> Moderator:
    return build_moderator(settings())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=CAPTURE_COLD_START)
def handler(event: dict, context: LambdaContext) -> dict:
    if event.get("Event") == "s3:TestEvent":  # sent once when a notification is configured
        return {"processed": 0}
    cfg = settings()
    confirmations, mailer = _confirming(cfg)
    processed = 0
    for record in S3Event(event).records:
        # Keys arrive URL-encoded (AWS: `+` for a space; some emulators also `%2F` for `/`).
        bucket, key = record.s3.bucket.name, unquote_plus(record.s3.get_object.key)
        request_id = request_id_from_upload_key(key)
        if bucket != cfg.uploads_bucket or request_id is None:
            logger.warning("ignoring an object that is not an upload of ours", extra={"bucket": bucket})
            continue
        logger.set_correlation_id(request_id)
        try:
            outcome = caption_upload(
                request_id,
                store=clients.store(),
                s3=clients.s3(),
                settings=cfg,
                captioner=_captioner,
                moderator=_moderator,
                deadline=Deadline.from_lambda_context(context),
                delivery=delivery_of(record),
                confirmations=confirmations,
                mailer=mailer,
            )
        except LeaseHeld:
            # Not done by this delivery: failing the invocation makes Lambda deliver the event again
            # later, when the holder has finished (then nothing is left to do) or its lease expired.
            logger.info("caption step", extra={"outcome": "busy", "detail": "another delivery holds the claim"})
            metrics.add_metric(name="Caption_busy", unit=MetricUnit.Count, value=1)
            raise
        logger.info("caption step", extra={"outcome": outcome.outcome, "detail": outcome.detail})
        metrics.add_metric(name=f"Caption_{outcome.outcome}", unit=MetricUnit.Count, value=1)
        processed += 1
    return {"processed": processed}
