"""`rekognition`: Amazon Rekognition `DetectModerationLabels` for the upload and the picture (the
image bytes, JPEG or PNG, at most 5 MB: both are made smaller than that before they get here), with
`MinConfidence`; Amazon Comprehend `DetectToxicContent` for the caption (English; offered in
us-east-1, us-west-2, eu-west-1 and ap-southeast-2: a stack elsewhere names one of those in
ModerationTextRegion).

Rekognition returns only the labels at or above MinConfidence, so any label flags the image.
Comprehend returns a `Toxicity` score (0..1) per segment; at or above the threshold flags the text.
Errors after botocore's own retries are a moderator outage, retried by the step like a provider's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from reimagine.moderation import ModerationUnavailable, Verdict

if TYPE_CHECKING:
    from reimagine.config import Settings
    from reimagine.model_call import Deadline

NAME = "rekognition"
# Answers that no retry can change: the image or the text is not one these APIs take.
_PERMANENT = frozenset(
    {
        "InvalidImageFormatException",
        "ImageTooLargeException",
        "InvalidParameterException",
        "TextSizeLimitExceededException",
        "UnsupportedLanguageException",
        "AccessDeniedException",
    }
)


class RekognitionModerator:
    name = NAME

    def __init__(self, rekognition: Any, comprehend: Any, *, min_confidence: float, toxicity_threshold: float) -> None:
        self._rekognition = rekognition
        self._comprehend = comprehend
        self.min_confidence = min_confidence
        self.toxicity_threshold = toxicity_threshold

    def check_image(self, data: bytes, media_type: str, deadline: Deadline) -> Verdict:
        answer = _call(
            lambda: self._rekognition.detect_moderation_labels(
                Image={"Bytes": data}, MinConfidence=self.min_confidence
            ),
            "Rekognition DetectModerationLabels",
        )
        labels = answer.get("ModerationLabels", [])
        # The top-level categories (ParentName empty) name what tripped it; any label at all flags.
        names = tuple(sorted({label.get("ParentName") or label.get("Name", "") for label in labels}))
        return Verdict(bool(labels), names)

    def check_text(self, text: str, deadline: Deadline) -> Verdict:
        answer = _call(
            lambda: self._comprehend.detect_toxic_content(TextSegments=[{"Text": text}], LanguageCode="en"),
            "Comprehend DetectToxicContent",
        )
        results = answer.get("ResultList", [])
        if not results:
            raise ModerationUnavailable("Comprehend returned no result")
        toxicity = float(results[0].get("Toxicity", 0.0))
        labels = tuple(
            sorted(
                label["Name"]
                for label in results[0].get("Labels", [])
                if label.get("Score", 0.0) >= self.toxicity_threshold
            )
        )
        return Verdict(toxicity >= self.toxicity_threshold, labels)


def _call(call: Any, what: str) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = call()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        raise ModerationUnavailable(f"{what} failed: {code}", retryable=code not in _PERMANENT) from None
    except BotoCoreError as exc:
        raise ModerationUnavailable(f"{what} could not be reached: {type(exc).__name__}") from None
    return answer


def build(settings: Settings) -> RekognitionModerator:
    import boto3

    return RekognitionModerator(
        boto3.client("rekognition"),
        boto3.client("comprehend", region_name=settings.moderation_text_region or None),
        min_confidence=settings.moderation_min_confidence,
        toxicity_threshold=settings.moderation_toxicity_threshold,
    )
