"""The offline moderator (the open_nsfw model) on the local stack, as the template deploys it by
default: the caption function loads the real model from the layer's package and scores the upload.
A threshold below what the model scores the sample photo blocks it at the upload, which shows the
model ran there (at the default threshold the same photo completes: tests/integration/test_pipeline.py).
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import SAMPLE_PHOTO, Pipeline, PipelineConfig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline_config() -> PipelineConfig:
    # open_nsfw scores the sample photo (a landscape) about 0.014; the default threshold is 0.8.
    return PipelineConfig(parameters={"Moderation": "offline", "ModerationNsfwThreshold": "0.01"})


def test_the_offline_model_scores_the_upload_on_the_local_stack(pipeline: Pipeline):
    request_id = pipeline.submit(SAMPLE_PHOTO.read_bytes(), "image/jpeg", email="offline-check@example.com")
    record = pipeline.status(request_id)
    assert (record["status"], record["error"]["code"], record["error"]["details"]) == (
        "FAILED",
        "CONTENT_BLOCKED",
        {"stage": "upload"},
    )
