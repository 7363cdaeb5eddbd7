"""MailEventsFunction: SES bounce and complaint events (EventBridge) -> suppressed addresses.

Logs say what happened (event type, bounce type, SES's ids), never the address.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from reimagine import clients
from reimagine.config import require_settings, settings
from reimagine.observability import CAPTURE_COLD_START, logger, metrics, tracer
from reimagine.steps.mail_events import MailEvent, record_mail_event
from reimagine.suppression import SuppressionList

# Checked at start: a missing one stops the container's init with a clear message.
REQUIRED_SETTINGS = ("table_name",)
require_settings(*REQUIRED_SETTINGS)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=CAPTURE_COLD_START)
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict:
    # A detail that is not SES's documented record raises here: the invocation fails and is retried,
    # then parked in the failure queue, rather than being taken for "nothing to suppress".
    mail_event = MailEvent.model_validate(event.detail)
    recorded = record_mail_event(mail_event, SuppressionList.from_settings(clients.dynamodb(), settings()))
    logger.info(
        "SES event recorded",
        extra={
            "detail_type": event.detail_type,
            "kind": recorded.kind,
            "recipients": recorded.recipients,
            "newly_suppressed": recorded.suppressed,
            "ses_message_id": mail_event.mail.message_id,
        },
    )
    metrics.add_metric(name=f"MailEvent_{recorded.kind}", unit=MetricUnit.Count, value=1)
    if recorded.suppressed:
        metrics.add_metric(name="AddressesSuppressed", unit=MetricUnit.Count, value=recorded.suppressed)
    return {"kind": recorded.kind, "recipients": recorded.recipients, "suppressed": recorded.suppressed}
