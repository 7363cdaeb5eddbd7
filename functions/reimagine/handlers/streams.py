"""What the record-triggered functions share: one record -> one request id -> one step, partial failures.

Notify reads the table's stream; Generate reads GenerateQueue, whose messages are stream records as
GeneratePipe sends them (the record's JSON as the body). Either way a record names its request by
`dynamodb.Keys.id`, and one that names none can never succeed: it is logged (without its content)
and dropped instead of being retried. A step that finds another delivery holding its request fails
that record (LeaseHeld), so it is delivered again later rather than counted done.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from reimagine.models import is_request_id
from reimagine.observability import logger, metrics
from reimagine.steps.claims import LeaseHeld, StepOutcome

# A step run for one request, given its id (reimagine.lifecycle.Step is what states a step's statuses).
RequestStep = Callable[[str], StepOutcome]
# A queue's step also learns which message it serves: SQS delivers a message again with the same
# messageId, so a redelivery after a worker died may take that worker's claim over (see records.claim).
QueueStep = Callable[[str, str], StepOutcome]


def _request_id(record: DynamoDBRecord) -> str | None:
    request_id = str((record.dynamodb.keys if record.dynamodb else {}).get("id", ""))
    return request_id if is_request_id(request_id) else None


def _run(request_id: str | None, *, source: str, step_name: str, step: RequestStep) -> None:
    """The step for one record; an exception fails this record only (the batch reports it)."""
    if request_id is None:
        logger.warning(f"ignoring a {source} without a request id")
        return
    logger.set_correlation_id(request_id)
    try:
        outcome = step(request_id)
    except LeaseHeld:
        logger.info(f"{step_name} step", extra={"outcome": "busy", "detail": "another delivery holds the claim"})
        metrics.add_metric(name=f"{step_name.title()}_busy", unit=MetricUnit.Count, value=1)
        raise
    logger.info(f"{step_name} step", extra={"outcome": outcome.outcome, "detail": outcome.detail})
    metrics.add_metric(name=f"{step_name.title()}_{outcome.outcome}", unit=MetricUnit.Count, value=1)


def process_stream(
    event: dict, context: LambdaContext, *, step_name: str, step: RequestStep
) -> PartialItemFailureResponse:
    """Run `step` for each stream record's request id; failed records are reported, not the whole batch."""

    def handle(record: DynamoDBRecord) -> None:
        _run(_request_id(record), source="stream record", step_name=step_name, step=step)

    # Streams retry what we report; raising when every record failed would only bisect the same work.
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=handle, processor=processor, context=context)


def process_queue(
    event: dict, context: LambdaContext, *, step_name: str, step: QueueStep
) -> PartialItemFailureResponse:
    """Run `step` for each SQS message whose body is a stream record; failed messages are reported by
    messageId (they become visible again and are retried until the queue's maxReceiveCount)."""

    def handle(record: SQSRecord) -> None:
        try:
            body = json.loads(record.body)
        except (TypeError, ValueError):
            body = None
        request_id = _request_id(DynamoDBRecord(body)) if isinstance(body, dict) else None
        _run(
            request_id,
            source="queue message",
            step_name=step_name,
            step=lambda rid: step(rid, f"sqs:{record.message_id}"),
        )

    # As for streams: the response lists every failed message, which SQS retries the same way.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=handle, processor=processor, context=context)
