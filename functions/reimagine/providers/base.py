"""The two interfaces every provider implements (what passes through them: reimagine.model_call)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from reimagine.model_call import Deadline, ModelInput

# What every captioning model is asked, whichever provider serves it.
CAPTION_INSTRUCTION = (
    "Describe this photo in one sentence of at most 30 words: the main subject, the setting, "
    "the colours and the mood. Reply with the sentence only."
)


class Captioner(Protocol):
    """One model that describes an image in one sentence. Raises reimagine.errors.ProviderError on
    failure (ModelUnavailable when this model cannot be used at all)."""

    name: str  # the provider
    model: str  # the model id, as the record names it

    def caption(self, image: ModelInput, deadline: Deadline) -> str: ...


class ImageGenerator(Protocol):
    """One model that renders a picture from a prompt; returns PNG bytes. Raises ProviderError on
    failure (ModelUnavailable when this model cannot be used at all)."""

    name: str
    model: str

    def generate(self, prompt: str, deadline: Deadline) -> bytes: ...
