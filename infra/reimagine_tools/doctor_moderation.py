"""`reimagine doctor`'s checks of the configured moderator (the MODERATION variable of the caption
and generate functions):

- none: a warning, since the stack's API is public and anything sent would be processed unchecked;
- offline: the open_nsfw model loads from its package and scores a blank image, and what it catches
  is said plainly (nudity only; no violence, no hate, no text);
- openai: `POST {base}/v1/moderations` answers a moderation result for a blank image;
- rekognition: DetectModerationLabels on a blank image and DetectToxicContent on a short text
  answer, with the caller's credentials (the functions' role is granted exactly these two actions).
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator

import requests
from botocore.exceptions import BotoCoreError, ClientError

from reimagine_tools.doctor import AWS_UNREACHABLE, FAIL, NO_AWS, OK, SKIPPED, WARN, Check, Doctor, _unanswered

SUBJECT = "moderation"
# Where Amazon Comprehend offers DetectToxicContent (its documentation, toxicity detection).
TOXICITY_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2")


def blank_png(size: int = 64) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (size, size), (255, 255, 255)).save(out, "PNG")
    return out.getvalue()


def moderation_checks(doctor: Doctor) -> Iterator[Check]:

    env = doctor.config.caption
    moderator = env.get("MODERATION")
    if moderator is None:
        return  # a template without moderation
    if moderator == "none":
        yield Check(
            WARN,
            SUBJECT,
            "none: uploads, captions and pictures go unchecked, and anyone who can reach the API can "
            "have anything processed and mailed; choose offline, openai or rekognition for a public stack",
            verifies=False,  # states the configuration; asks no service
        )
    elif moderator == "offline":
        yield _offline()
    elif moderator == "openai":
        yield _openai(doctor, env)
    elif moderator == "rekognition":
        yield from _rekognition(doctor, env)
    else:
        yield Check(FAIL, SUBJECT, f"unknown moderator {moderator!r}")


def _offline() -> Check:
    from reimagine.moderation.offline import DETECTS, load_classifier

    started = time.perf_counter()
    try:
        classifier = load_classifier()
        score = float(classifier.classify(blank_png()).nsfw)
    except Exception as exc:  # whatever stops the model is what the operator reads
        return Check(FAIL, SUBJECT, f"offline: the open_nsfw model does not load ({type(exc).__name__}: {exc})")
    took = time.perf_counter() - started
    return Check(
        OK,
        SUBJECT,
        f"offline: open_nsfw loaded and scored a blank image {score:.3f} in {took:.1f} s; it detects {DETECTS}",
        verifies=False,  # the model on this machine, not a service of the stack
    )


def _openai(doctor: Doctor, env: dict[str, str]) -> Check:

    base = env.get("OPENAI_BASE_URL", "").rstrip("/")
    url = f"{base if base.endswith('/v1') else base + '/v1'}/moderations"
    headers = {}
    if env.get("OPENAI_KEY_PARAMETER") or doctor.environ.get("OPENAI_API_KEY"):
        key, source = doctor._secret("OPENAI_API_KEY", env.get("OPENAI_KEY_PARAMETER", ""), "OpenAiKeyParameter")
        if key is None:
            return Check(FAIL, SUBJECT, f"openai: no key ({source})")
        headers["Authorization"] = f"Bearer {key}"
    image = "data:image/png;base64," + base64.b64encode(blank_png()).decode("ascii")
    body = {"model": "omni-moderation-latest", "input": [{"type": "image_url", "image_url": {"url": image}}]}
    try:
        response = doctor.http.post(url, json=body, headers=headers, timeout=(3.05, 15.0))
    except requests.RequestException as exc:
        return Check(FAIL, SUBJECT, f"openai: {url} did not answer ({_unanswered(exc)})")
    try:
        results = response.json().get("results") if response.status_code == 200 else None
    except ValueError:
        results = None
    if not isinstance(results, list) or not results or "flagged" not in results[0]:
        return Check(FAIL, SUBJECT, f"openai: {url} answered HTTP {response.status_code}, not a moderation result")
    return Check(OK, SUBJECT, f"openai: {url} answers (omni-moderation-latest; images and text)")


def _rekognition(doctor: Doctor, env: dict[str, str]) -> Iterator[Check]:

    if doctor.aws is None:
        yield Check(SKIPPED, SUBJECT, f"rekognition: not checked: {NO_AWS}")
        return
    text_region = env.get("MODERATION_TEXT_REGION", "")
    calls = (
        (
            "Rekognition DetectModerationLabels",
            lambda: doctor.aws("rekognition").detect_moderation_labels(
                Image={"Bytes": blank_png()}, MinConfidence=float(env.get("MODERATION_MIN_CONFIDENCE") or 50)
            ),
        ),
        (
            "Comprehend DetectToxicContent",
            lambda: doctor.aws("comprehend", text_region).detect_toxic_content(
                TextSegments=[{"Text": "a quiet lake at dawn"}], LanguageCode="en"
            ),
        ),
    )
    for what, call in calls:
        try:
            call()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "error"))
            hint = ""
            if what.startswith("Comprehend"):
                hint = f"; it is offered in {', '.join(TOXICITY_REGIONS)} (ModerationTextRegion)"
            yield Check(FAIL, SUBJECT, f"rekognition: {what} refused ({code}){hint}")
            continue
        except AWS_UNREACHABLE as exc:
            yield Check(FAIL, SUBJECT, f"rekognition: {what} did not answer ({_unanswered(exc)})")
            continue
        except (BotoCoreError, NotImplementedError):
            yield Check(SKIPPED, SUBJECT, f"rekognition: {what} cannot be asked here")
            continue
        yield Check(OK, SUBJECT, f"rekognition: {what} answers")
