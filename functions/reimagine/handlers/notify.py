"""NotifyFunction: stream records of finished, not yet notified requests -> one email each."""

from __future__ import annotations

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from reimagine import clients
from reimagine.config import require_settings, settings
from reimagine.confirmation import Confirmations, MailLinks
from reimagine.handlers.streams import process_stream
from reimagine.observability import CAPTURE_COLD_START, logger, metrics, tracer
from reimagine.quota import hashing_key
from reimagine.steps.claims import LEASE_MARGIN_SECONDS
from reimagine.steps.notify import notify_user
from reimagine.suppression import SuppressionList

# Checked at start: a missing one stops the container's init with a clear message.
REQUIRED_SETTINGS = ("table_name", "results_bucket")
require_settings(*REQUIRED_SETTINGS)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=CAPTURE_COLD_START)
def handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    # A claim outlives this invocation, so a worker killed mid-send is not overtaken while it may still send.
    lease = context.get_remaining_time_in_millis() // 1000 + LEASE_MARGIN_SECONDS
    cfg = settings()
    confirmations = Confirmations.from_settings(clients.dynamodb(), cfg) if cfg.confirm_addresses else None
    links = MailLinks(cfg.api_base_url, hashing_key(cfg)) if cfg.api_base_url else None
    return process_stream(
        event,
        context,
        step_name="notify",
        step=lambda request_id: notify_user(
            request_id,
            store=clients.store(),
            s3=clients.s3(),
            ses=clients.ses(),
            settings=settings(),
            lease_seconds=lease,
            suppressions=SuppressionList.from_settings(clients.dynamodb(), settings()),
            confirmations=confirmations,
            links=links,
        ),
    )
