"""Fallback chains: each model of a step tried in order until one answers.

Models move (removed from a provider, end of life, no access), so every provider is given an ordered
chain of models per step. Only ModelUnavailable moves on to the next model: rate limits and 5xx are
retried on the same model by providers/retry.py, and a bad answer stays PROVIDER_BAD_RESPONSE, since
another model would not make a broken service well. When every model is unavailable the step fails
with NO_MODEL_AVAILABLE (not retryable), naming what was tried.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from aws_lambda_powertools.metrics import MetricUnit

from reimagine.errors import ModelUnavailable, ProviderError
from reimagine.observability import logger, metrics
from reimagine.providers.untrusted import for_log

if TYPE_CHECKING:
    from reimagine.model_call import Deadline, ModelInput
    from reimagine.providers.base import Captioner, ImageGenerator

T = TypeVar("T")
L = TypeVar("L", "Captioner", "ImageGenerator")


@dataclass(frozen=True)
class Captioned:
    text: str
    model: str  # the model that wrote it


@dataclass(frozen=True)
class Painted:
    png: bytes
    model: str  # the model that painted it


def _run(links: Sequence[L], call: Callable[[L], T], *, step: str) -> tuple[T, str]:
    tried: list[str] = []
    for position, link in enumerate(links):
        try:
            return call(link), link.model
        except ModelUnavailable as exc:
            tried.append(f"{link.model} ({for_log(exc.message)})")
            if position + 1 < len(links):
                metrics.add_metric(name="ModelFallback", unit=MetricUnit.Count, value=1)
                logger.warning(
                    "model unavailable, falling back to the next in the chain",
                    extra={
                        "step": step,
                        "model": link.model,
                        "next_model": links[position + 1].model,
                        "reason": for_log(exc.message),
                    },
                )
        except ProviderError as exc:
            # The provider's own words go to the log, made inert; the user reads exc.public_message.
            logger.warning(
                "provider call failed",
                extra={"step": step, "model": link.model, "code": exc.code, "reason": for_log(exc.message)},
            )
            raise
    metrics.add_metric(name="ChainExhausted", unit=MetricUnit.Count, value=1)
    # Why each model could not be used (a remedy, a provider's reason) is for the operator: logged.
    logger.warning("no model of the chain is available", extra={"step": step, "tried": "; ".join(tried)})
    models = ", ".join(link.model for link in links)  # our configuration, not the provider's words
    raise ProviderError(
        f"no {step} model is available; tried " + "; ".join(tried),
        code="NO_MODEL_AVAILABLE",
        retryable=False,
        public=f"no {step} model is available; tried {models}; please send the photo again later",
    )


class CaptionChain:
    """Captions with the first model of the chain that is available."""

    def __init__(self, links: Sequence[Captioner]) -> None:
        if not links:
            raise ValueError("a caption chain needs at least one model")
        self.links = list(links)
        self.name = self.links[0].name

    def caption(self, image: ModelInput, deadline: Deadline) -> Captioned:
        text, model = _run(self.links, lambda link: link.caption(image, deadline), step="caption")
        return Captioned(text, model)


class PictureChain:
    """Paints with the first model of the chain that is available."""

    def __init__(self, links: Sequence[ImageGenerator]) -> None:
        if not links:
            raise ValueError("a picture chain needs at least one model")
        self.links = list(links)
        self.name = self.links[0].name

    def generate(self, prompt: str, deadline: Deadline) -> Painted:
        png, model = _run(self.links, lambda link: link.generate(prompt, deadline), step="image")
        return Painted(png, model)


def caption_chain(provider: Captioner | CaptionChain) -> CaptionChain:
    """A chain as is; a single captioner (the offline one, a test double) as a chain of one."""
    return provider if isinstance(provider, CaptionChain) else CaptionChain([provider])


def picture_chain(provider: ImageGenerator | PictureChain) -> PictureChain:
    return provider if isinstance(provider, PictureChain) else PictureChain([provider])
