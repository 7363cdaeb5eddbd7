"""Each moderator against fakes written from its service's documentation and official client:

- openai: the moderation endpoint's request and answer as the `openai` SDK's types define them
  (tests/fixtures/moderation_standin.py builds the answers);
- rekognition: Rekognition's DetectModerationLabels and Comprehend's DetectToxicContent through a
  botocore Stubber, which checks every request and answer against botocore's service models;
- offline: the real open_nsfw model, on images made here.
"""

from __future__ import annotations

import base64
import json

import boto3
import pytest
import responses
from botocore.stub import Stubber

from reimagine.config import Settings
from reimagine.moderation import ModerationUnavailable, Verdict, build_moderator
from reimagine.moderation import openai as om
from reimagine.moderation.offline import OfflineModerator, load_classifier
from reimagine.moderation.rekognition import RekognitionModerator
from reimagine.providers import http
from tests.fixtures import images
from tests.fixtures.moderation_standin import moderation_answer, moderation_result
from tests.fixtures.provider_fakes import FakeClock

BASE = "https://api.openai.example"
URL = f"{BASE}/v1/moderations"
KEY = "sk-TopSecretKeyValue"


def openai_moderator(clock: FakeClock, threshold: float | None = None) -> om.OpenAiModerator:
    client = http.HttpClient(token=lambda: KEY, sleep=clock.sleep, rand=lambda: 0.0)
    return om.OpenAiModerator(client, base_url=BASE, model="omni-moderation-latest", threshold=threshold)


# ---- openai ----------------------------------------------------------------------------------------


@responses.activate
def test_openai_sends_the_image_as_a_data_url_image_part_of_omni_moderation_latest() -> None:
    # Given the endpoint
    responses.post(URL, json=moderation_answer(moderation_result("image")))
    clock = FakeClock(60)
    photo = images.jpeg()
    # When an upload is checked
    openai_moderator(clock).check_image(photo, "image/jpeg", clock.deadline)
    # Then the request is the documented one
    assert json.loads(responses.calls[0].request.body) == {
        "model": "omni-moderation-latest",
        "input": [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(photo).decode()}}
        ],
    }


@responses.activate
def test_openai_a_flagged_upload_is_flagged_with_its_categories() -> None:
    responses.post(URL, json=moderation_answer(moderation_result("image", {"sexual": 0.97})))
    clock = FakeClock(60)
    assert openai_moderator(clock).check_image(images.jpeg(), "image/jpeg", clock.deadline) == Verdict(
        True, ("sexual",)
    )


@responses.activate
def test_openai_a_flagged_caption_is_flagged() -> None:
    responses.post(URL, json=moderation_answer(moderation_result("text", {"hate": 0.9})))
    clock = FakeClock(60)
    assert openai_moderator(clock).check_text("a caption", clock.deadline) == Verdict(True, ("hate",))


@responses.activate
def test_openai_a_flagged_picture_is_flagged() -> None:
    responses.post(URL, json=moderation_answer(moderation_result("image", {"violence/graphic": 0.8})))
    clock = FakeClock(60)
    verdict = openai_moderator(clock).check_image(images.png(), "image/png", clock.deadline)
    assert verdict == Verdict(True, ("violence/graphic",))


@responses.activate
def test_openai_an_unflagged_photo_passes() -> None:
    responses.post(URL, json=moderation_answer(moderation_result("image")))
    clock = FakeClock(60)
    assert openai_moderator(clock).check_image(images.jpeg(), "image/jpeg", clock.deadline) == Verdict(False)


@responses.activate
def test_openai_a_score_threshold_flags_below_the_endpoints_own_line() -> None:
    # Given a score under the endpoint's own `flagged` line, and a stricter threshold
    responses.post(URL, json=moderation_answer(moderation_result("image", {"sexual": 0.3})))
    clock = FakeClock(60)
    # When the photo is checked
    verdict = openai_moderator(clock, threshold=0.2).check_image(images.jpeg(), "image/jpeg", clock.deadline)
    # Then the threshold decides
    assert verdict == Verdict(True, ("sexual",))


@responses.activate
def test_openai_a_score_for_a_text_only_category_does_not_flag_an_image() -> None:
    # `hate` applies to text only (category_applied_input_types): an image's hate score is not read
    responses.post(URL, json=moderation_answer(moderation_result("image", {"hate": 0.9})))
    clock = FakeClock(60)
    verdict = openai_moderator(clock, threshold=0.5).check_image(images.jpeg(), "image/jpeg", clock.deadline)
    assert verdict == Verdict(False)


@responses.activate
def test_openai_an_outage_is_retried_then_unavailable_and_retryable() -> None:
    # Given an endpoint that keeps answering 503
    responses.post(URL, status=503, json={"error": {"message": "overloaded", "type": "server_error"}})
    clock = FakeClock(60)
    # When a caption is checked
    with pytest.raises(ModerationUnavailable) as caught:
        openai_moderator(clock).check_text("a caption", clock.deadline)
    # Then it was retried, and fails with a code the step retries
    assert (len(responses.calls) > 1, caught.value.code, caught.value.retryable) == (
        True,
        "MODERATION_UNAVAILABLE",
        True,
    )


@responses.activate
def test_openai_an_answer_that_is_not_a_moderation_is_unavailable() -> None:
    responses.post(URL, json={"object": "list", "data": []})
    clock = FakeClock(60)
    with pytest.raises(ModerationUnavailable):
        openai_moderator(clock).check_text("a caption", clock.deadline)


def test_openai_is_built_on_the_configured_server_and_model() -> None:
    moderator = build_moderator(Settings(moderation="openai", openai_base_url="http://localhost:11434/v1"))
    assert (moderator.name, moderator._url, moderator.model) == (
        "openai",
        "http://localhost:11434/v1/moderations",
        "omni-moderation-latest",
    )


# ---- rekognition -----------------------------------------------------------------------------------


@pytest.fixture
def aws_moderator():
    rekognition = boto3.client("rekognition", region_name="us-east-1")
    comprehend = boto3.client("comprehend", region_name="us-east-1")
    with Stubber(rekognition) as rek, Stubber(comprehend) as comp:
        yield RekognitionModerator(rekognition, comprehend, min_confidence=50.0, toxicity_threshold=0.5), rek, comp


def _labels(*pairs: tuple[str, str]) -> dict:
    return {
        "ModerationLabels": [
            {"Name": name, "ParentName": parent, "Confidence": 92.5, "TaxonomyLevel": 2 if parent else 1}
            for name, parent in pairs
        ],
        "ModerationModelVersion": "7.0",
    }


def test_rekognition_a_flagged_upload_names_its_top_level_category(aws_moderator) -> None:
    moderator, rek, _ = aws_moderator
    photo = images.jpeg()
    rek.add_response(
        "detect_moderation_labels",
        _labels(("Explicit Nudity", ""), ("Exposed Male Genitalia", "Explicit Nudity")),
        {"Image": {"Bytes": photo}, "MinConfidence": 50.0},
    )
    assert moderator.check_image(photo, "image/jpeg", FakeClock(60).deadline) == Verdict(True, ("Explicit Nudity",))


def test_rekognition_an_unflagged_picture_passes(aws_moderator) -> None:
    moderator, rek, _ = aws_moderator
    picture = images.png()
    rek.add_response("detect_moderation_labels", _labels(), {"Image": {"Bytes": picture}, "MinConfidence": 50.0})
    assert moderator.check_image(picture, "image/png", FakeClock(60).deadline) == Verdict(False)


def test_rekognition_a_flagged_picture_is_flagged(aws_moderator) -> None:
    moderator, rek, _ = aws_moderator
    rek.add_response("detect_moderation_labels", _labels(("Graphic Violence", "")))
    assert moderator.check_image(images.png(), "image/png", FakeClock(60).deadline).flagged is True


def _toxicity(score: float, **labels: float) -> dict:
    return {"ResultList": [{"Toxicity": score, "Labels": [{"Name": n, "Score": s} for n, s in labels.items()]}]}


def test_comprehend_a_toxic_caption_is_flagged(aws_moderator) -> None:
    moderator, _, comp = aws_moderator
    comp.add_response(
        "detect_toxic_content",
        _toxicity(0.91, HATE_SPEECH=0.88, INSULT=0.2),
        {"TextSegments": [{"Text": "a caption"}], "LanguageCode": "en"},
    )
    assert moderator.check_text("a caption", FakeClock(60).deadline) == Verdict(True, ("HATE_SPEECH",))


def test_comprehend_a_clean_caption_passes(aws_moderator) -> None:
    moderator, _, comp = aws_moderator
    comp.add_response("detect_toxic_content", _toxicity(0.02, PROFANITY=0.01))
    assert moderator.check_text("a caption", FakeClock(60).deadline) == Verdict(False)


def test_rekognition_throttling_is_a_retryable_outage(aws_moderator) -> None:
    moderator, rek, _ = aws_moderator
    rek.add_client_error("detect_moderation_labels", "ThrottlingException", http_status_code=400)
    with pytest.raises(ModerationUnavailable) as caught:
        moderator.check_image(images.jpeg(), "image/jpeg", FakeClock(60).deadline)
    assert (caught.value.code, caught.value.retryable) == ("MODERATION_UNAVAILABLE", True)


def test_rekognition_access_denied_fails_at_once(aws_moderator) -> None:
    moderator, rek, _ = aws_moderator
    rek.add_client_error("detect_moderation_labels", "AccessDeniedException", http_status_code=403)
    with pytest.raises(ModerationUnavailable) as caught:
        moderator.check_image(images.jpeg(), "image/jpeg", FakeClock(60).deadline)
    assert caught.value.retryable is False


# ---- offline ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


def test_offline_a_plain_photo_passes_at_the_default_threshold(classifier) -> None:
    moderator = OfflineModerator(classifier, threshold=Settings().moderation_nsfw_threshold)
    assert moderator.check_image(images.photo_like(640, 480), "image/jpeg", FakeClock(60).deadline) == Verdict(False)


def test_offline_an_image_scoring_at_the_threshold_is_flagged(classifier) -> None:
    # Given a threshold just under what the real model scores this image
    photo = images.photo_like(640, 480)
    score = OfflineModerator(classifier, threshold=1.0).nsfw_score(photo)
    # When it is checked against that threshold
    verdict = OfflineModerator(classifier, threshold=score).check_image(photo, "image/jpeg", FakeClock(60).deadline)
    # Then it is flagged as nsfw
    assert verdict == Verdict(True, ("nsfw",))


def test_offline_reads_no_text(classifier) -> None:
    assert OfflineModerator(classifier, threshold=0.01).check_text("anything", FakeClock(60).deadline) == Verdict(False)


def test_offline_is_built_from_the_weights_inside_the_package() -> None:
    moderator = build_moderator(Settings(moderation="offline", moderation_nsfw_threshold=0.7))
    assert (moderator.name, moderator.threshold) == ("offline", 0.7)
