"""Caption step: read the upload, check it is the image it claims to be, prepare it, caption it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reimagine import imaging, storage
from reimagine.caption_text import clean_caption
from reimagine.confirmation import hold_unless_confirmed, resume
from reimagine.errors import PipelineError
from reimagine.lifecycle import CAPTION
from reimagine.models import RequestRecord, upload_key
from reimagine.moderation import Moderator, NoModeration, counted, screen_image, screen_text
from reimagine.observability import logger, tracer
from reimagine.providers.chain import CaptionChain, Captioned, caption_chain
from reimagine.steps.claims import StepOutcome, run_step

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from reimagine.config import Settings
    from reimagine.confirmation import Confirmations, Mailer
    from reimagine.model_call import Deadline, ModelInput
    from reimagine.providers.base import Captioner
    from reimagine.records import RequestStore

_FORMAT_TO_TYPE = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


# Traced steps leave their results out of X-Ray: captions and images are the user's content.
@tracer.capture_method(capture_response=False)
def caption_upload(
    request_id: str,
    *,
    store: RequestStore,
    s3: S3Client,
    settings: Settings,
    captioner: Callable[[], Captioner | CaptionChain],
    deadline: Deadline,
    delivery: str | None = None,
    confirmations: Confirmations | None = None,
    mailer: Mailer | None = None,
    moderator: Callable[[], Moderator] = NoModeration,
) -> StepOutcome:
    def work(record: RequestRecord) -> dict[str, Any]:
        data = storage.read_upload(
            s3,
            bucket=settings.uploads_bucket,
            key=upload_key(request_id),
            max_bytes=settings.max_upload_bytes,
        )
        if record.declared_size is not None and len(data) != record.declared_size:
            raise PipelineError(
                f"the upload is {len(data)} bytes but {record.declared_size} were declared",
                code="UPLOAD_SIZE_MISMATCH",
            )
        prepared = imaging.prepare_for_model(
            data,
            max_pixels=settings.max_image_pixels,
            max_side=settings.caption_max_side,
            jpeg_quality=settings.caption_jpeg_quality,
        )
        actual_type = _FORMAT_TO_TYPE.get(prepared.source_format)
        if actual_type != record.content_type:
            raise PipelineError(
                f"the upload is {actual_type or prepared.source_format}, not the declared {record.content_type}",
                code="CONTENT_TYPE_MISMATCH",
            )
        logger.info(
            "prepared image for captioning",
            extra={
                "source_format": prepared.source_format,
                "source_pixels": f"{prepared.source_width}x{prepared.source_height}",
                "model_input_bytes": len(prepared.data),
            },
        )
        if confirmations is not None and mailer is not None:
            # After the upload is validated, before any provider is called: nothing is spent on a
            # request whose address has not asked for mail.
            hold_unless_confirmed(record.email, record.id, confirmations=confirmations, mailer=mailer)
        # Checked before any caption call: nothing is spent on a blocked photo.
        screen_image(moderator(), prepared.data, prepared.media_type, stage="upload", deadline=deadline)
        chain = caption_chain(captioner())
        caption = _caption_with(chain, prepared, deadline)
        text = clean_caption(caption.text)
        # Checked before it is stored and becomes a prompt.
        screen_text(moderator(), text, stage="caption", deadline=deadline)
        return {"caption": text, "caption_provider": chain.name, "caption_model": caption.model}

    outcome = run_step(
        CAPTION,
        request_id,
        store=store,
        deadline=deadline,
        max_attempts=settings.max_attempts,
        work=counted(work),
        delivery=delivery,
    )
    if outcome.outcome == "diverted" and confirmations is not None:
        # A confirmation that landed while this request was being held found it not yet waiting.
        waiting = store.get(request_id)
        if waiting is not None and confirmations.is_confirmed(waiting.email):
            resume([request_id], confirmations=confirmations, s3=s3, uploads_bucket=settings.uploads_bucket)
    return outcome


@tracer.capture_method(capture_response=False)
def _caption_with(chain: CaptionChain, prepared: ModelInput, deadline: Deadline) -> Captioned:
    """The provider's call, as its own subsegment annotated with the provider's name."""
    tracer.put_annotation("provider", chain.name)
    return chain.caption(prepared, deadline)
