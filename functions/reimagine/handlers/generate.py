"""GenerateFunction: GenerateQueue messages (stream records of CAPTIONED requests, sent on by
GeneratePipe) -> render and store the result."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from reimagine import clients
from reimagine.config import require_settings, settings
from reimagine.handlers.streams import process_queue
from reimagine.model_call import Deadline
from reimagine.moderation import Moderator, build_moderator
from reimagine.observability import CAPTURE_COLD_START, logger, metrics, tracer
from reimagine.providers import build_generator
from reimagine.providers.base import ImageGenerator
from reimagine.providers.chain import PictureChain
from reimagine.steps.generate import generate_result
from reimagine.styles import catalogue

# Checked at start: a missing one stops the container's init with a clear message.
REQUIRED_SETTINGS = ("table_name", "results_bucket")
require_settings(*REQUIRED_SETTINGS)
catalogue(settings().styles)  # a STYLES setting that does not parse stops the init, saying why


@cache
def _generator() -> ImageGenerator | PictureChain:
    return build_generator(settings())


@cache
def _moderator() -> Moderator:
    return build_moderator(settings())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=CAPTURE_COLD_START)
def handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    deadline = Deadline.from_lambda_context(context)
    return process_queue(
        event,
        context,
        step_name="generate",
        step=lambda request_id, delivery: generate_result(
            request_id,
            store=clients.store(),
            s3=clients.s3(),
            settings=settings(),
            generator=_generator,
            moderator=_moderator,
            deadline=deadline,
            delivery=delivery,
        ),
    )
