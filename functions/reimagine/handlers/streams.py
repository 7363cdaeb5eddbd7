"""What both stream-triggered functions share: one record -> one request id -> one step, partial failures."""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from reimagine.models import is_request_id
from reimagine.observability import logger, metrics
from reimagine.steps import StepOutcome


def process_stream(
    event: dict, context: LambdaContext, *, step_name: str, step: Callable[[str], StepOutcome]
) -> PartialItemFailureResponse:
    """Run `step` for each record's request id; failed records are reported, not the whole batch."""

    def handle(record: DynamoDBRecord) -> None:
        request_id = str((record.dynamodb.keys if record.dynamodb else {}).get("id", ""))
        if not is_request_id(request_id):
            logger.warning("ignoring a stream record without a request id")
            return
        logger.set_correlation_id(request_id)
        outcome = step(request_id)
        logger.info(f"{step_name} step", extra={"outcome": outcome.outcome, "detail": outcome.detail})
        metrics.add_metric(name=f"{step_name.title()}_{outcome.outcome}", unit=MetricUnit.Count, value=1)

    # Streams retry what we report; raising when every record failed would only bisect the same work.
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=handle, processor=processor, context=context)
