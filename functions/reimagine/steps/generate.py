"""Generate step: turn the caption into a prompt, render the picture, store it as the result."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reimagine import storage
from reimagine.lifecycle import GENERATE
from reimagine.models import RequestRecord, result_key
from reimagine.moderation import Moderator, NoModeration, counted, screen_image
from reimagine.observability import tracer
from reimagine.prompts import build_prompt
from reimagine.providers.chain import Painted, PictureChain, picture_chain
from reimagine.steps.claims import StepOutcome, run_step
from reimagine.styles import catalogue

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from reimagine.config import Settings
    from reimagine.model_call import Deadline
    from reimagine.providers.base import ImageGenerator
    from reimagine.records import RequestStore


# No response captured: the picture is the user's content, and would overflow an X-Ray segment.
@tracer.capture_method(capture_response=False)
def generate_result(
    request_id: str,
    *,
    store: RequestStore,
    s3: S3Client,
    settings: Settings,
    generator: Callable[[], ImageGenerator | PictureChain],
    deadline: Deadline,
    delivery: str | None = None,
    moderator: Callable[[], Moderator] = NoModeration,
) -> StepOutcome:
    def work(record: RequestRecord) -> dict[str, Any]:
        from reimagine.imaging import fit_png  # Pillow only once a picture is made: the cold start stays small

        style = catalogue(settings.styles).for_record(record.style)
        prompt = build_prompt(record.caption or "", style.phrase)
        painted = _generate_with(picture_chain(generator()), prompt, deadline)
        # Stored at the size asked, whatever size the provider painted (to_png already capped it).
        png = fit_png(painted.png, settings.result_size)
        # Checked before it is stored: nothing blocked reaches the results bucket.
        screen_image(moderator(), png, "image/png", stage="picture", deadline=deadline)
        key = result_key(request_id)
        # The key is derived from the id, so a retried step overwrites rather than duplicates.
        storage.put_result(s3, bucket=settings.results_bucket, key=key, png=png)
        return {"result_key": key, "image_model": painted.model}

    return run_step(
        GENERATE,
        request_id,
        store=store,
        deadline=deadline,
        max_attempts=settings.max_attempts,
        work=counted(work),
        delivery=delivery,
    )


@tracer.capture_method(capture_response=False)
def _generate_with(chain: PictureChain, prompt: str, deadline: Deadline) -> Painted:
    """The provider's call, as its own subsegment annotated with the provider's name."""
    tracer.put_annotation("provider", chain.name)
    return chain.generate(prompt, deadline)
