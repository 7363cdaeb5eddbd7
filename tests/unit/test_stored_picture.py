"""The generate step stores the picture at the size asked, whatever size the provider painted."""

from __future__ import annotations

from reimagine import clients
from reimagine.model_call import Deadline, ModelInput
from reimagine.request_body import CreateRequestBody
from reimagine.steps import api as api_steps
from reimagine.steps.caption import caption_upload
from reimagine.steps.generate import generate_result
from tests.fixtures import images


class _Captioner:
    name, model = "fake", "fake-vision-1"

    def caption(self, image: ModelInput, deadline: Deadline) -> str:
        return "A green rectangle."


class _OversizedPainter:
    """Answers 2000x2000 whatever size was asked (as a provider that ignores `size` does)."""

    name, model = "fake", "fake-painter-2"

    def generate(self, prompt: str, deadline: Deadline) -> bytes:
        return images.png((2000, 2000))


def test_a_picture_painted_larger_than_asked_is_stored_at_the_size_asked(aws) -> None:
    # Given a captioned request and a stack asking for 768 px pictures
    settings = aws.model_copy(update={"result_size": 768})
    body = CreateRequestBody(email="jane@example.com", content_type="image/png")
    request_id = api_steps.create_request(body, store=clients.store(), s3=clients.s3(), settings=settings).id
    clients.s3().put_object(Bucket=settings.uploads_bucket, Key=f"uploads/{request_id}", Body=images.png())
    steps = {"store": clients.store(), "s3": clients.s3(), "settings": settings, "deadline": Deadline.after(30)}
    caption_upload(request_id, captioner=_Captioner, **steps)  # type: ignore[arg-type]
    # When a provider paints 2000x2000
    generate_result(request_id, generator=_OversizedPainter, **steps)  # type: ignore[arg-type]
    # Then the stored result is 768x768
    key = clients.store().get(request_id).result_key
    stored = clients.s3().get_object(Bucket=settings.results_bucket, Key=key)["Body"].read()
    assert images.decode(stored).size == (768, 768)
