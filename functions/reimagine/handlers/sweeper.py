"""SweeperFunction: on a schedule, re-drive or end stuck requests, and re-drive emails never sent."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from reimagine import clients, storage
from reimagine.config import require_settings, settings
from reimagine.models import upload_key, utcnow
from reimagine.observability import CAPTURE_COLD_START, logger, metrics, tracer
from reimagine.steps.sweeper import sweep

# Checked at start: a missing one stops the container's init with a clear message.
REQUIRED_SETTINGS = ("table_name", "uploads_bucket")
require_settings(*REQUIRED_SETTINGS)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=CAPTURE_COLD_START)
def handler(event: dict, context: LambdaContext) -> dict:
    cfg = settings()
    report = sweep(
        clients.store(),
        now=utcnow(),
        stuck_after_seconds=cfg.stuck_after_seconds,
        max_redrives=cfg.max_redrives,
        max_items=cfg.sweep_max_items,
        reannounce=lambda request_id: storage.reannounce_upload(
            clients.s3(), bucket=cfg.uploads_bucket, key=upload_key(request_id)
        ),
        # A confirmation link lasts as long as the upload is kept: past that, a waiting request ends.
        unconfirmed_after_seconds=cfg.upload_retention_days * 86400 if cfg.confirm_addresses else None,
    )
    for outcome, count in report.outcomes.items():
        metrics.add_metric(name=f"Sweep_{outcome}", unit=MetricUnit.Count, value=count)
    summary = report.summary()
    logger.info("sweep finished", extra={"scheduled_at": event.get("time"), **summary})
    return summary
