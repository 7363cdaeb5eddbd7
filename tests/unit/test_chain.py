"""Fallback chains: the next model only when one is unavailable; metrics say when that happens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reimagine.errors import ModelUnavailable, ProviderError
from reimagine.observability import metrics
from reimagine.providers.chain import CaptionChain, Captioned, Painted, PictureChain, caption_chain
from tests.fixtures.provider_fakes import IMAGE, FakeClock


class Link:
    """One model of a chain that answers, or raises, what it is told to."""

    name = "fake"

    def __init__(self, model: str, outcome: str | Exception) -> None:
        self.model = model
        self.outcome = outcome
        self.calls = 0

    def _answer(self):
        self.calls += 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    def caption(self, image, deadline) -> str:
        return self._answer()

    def generate(self, prompt, deadline) -> bytes:
        return self._answer()


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def counted(name: str) -> float:
    return sum(metrics.metric_set.get(name, {}).get("Value", [0]))


def gone(model: str) -> ModelUnavailable:
    return ModelUnavailable(f"{model} is not served")


def test_the_first_model_that_answers_writes_the_caption() -> None:
    # Given a chain whose first model is gone
    first, second = Link("a", gone("a")), Link("b", "A caption.")
    clock = FakeClock(60)

    # When it captions
    result = CaptionChain([first, second]).caption(IMAGE, clock.deadline)

    # Then the second model wrote it, and one fallback was counted
    assert (result, counted("ModelFallback"), counted("ChainExhausted")) == (Captioned("A caption.", "b"), 1, 0)


def test_a_picture_names_the_model_that_painted_it() -> None:
    clock = FakeClock(60)
    result = PictureChain([Link("x", gone("x")), Link("y", gone("y")), Link("z", b"png")]).generate("p", clock.deadline)
    assert (result, counted("ModelFallback")) == (Painted(b"png", "z"), 2)


@pytest.mark.parametrize(
    "error",
    [
        ProviderError("slow down", code="PROVIDER_UNAVAILABLE"),
        ProviderError("garbage", code="PROVIDER_BAD_RESPONSE"),
        ProviderError("no", code="PROVIDER_REJECTED", retryable=False),
        ProviderError("late", code="PROVIDER_TIMEOUT"),
    ],
    ids=lambda e: e.code,
)
def test_only_an_unavailable_model_moves_the_chain_on(error: ProviderError) -> None:
    first, second = Link("a", error), Link("b", "never asked")
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        CaptionChain([first, second]).caption(IMAGE, clock.deadline)
    assert (caught.value.code, second.calls, counted("ModelFallback")) == (error.code, 0, 0)


def test_an_exhausted_chain_fails_naming_every_model_tried() -> None:
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        PictureChain([Link("m1", gone("m1")), Link("m2", gone("m2"))]).generate("p", clock.deadline)
    error = caught.value
    assert (error.code, error.retryable, counted("ChainExhausted"), counted("ModelFallback")) == (
        "NO_MODEL_AVAILABLE",
        False,
        1,
        1,
    )
    assert "m1 (m1 is not served)" in error.message and "m2 (m2 is not served)" in error.message


def test_an_exhausted_chain_tells_the_user_the_models_but_not_the_providers_reasons() -> None:
    # Given a chain whose every model is unavailable, for reasons written by the providers
    clock = FakeClock(60)
    with pytest.raises(ProviderError) as caught:
        PictureChain([Link("m1", gone("m1")), Link("m2", gone("m2"))]).generate("p", clock.deadline)
    # Then the user reads which models were tried, in our words only
    assert caught.value.public_message == "no image model is available; tried m1, m2"


def test_a_single_captioner_is_a_chain_of_one() -> None:
    link = Link("only", "Words.")
    chain = caption_chain(link)
    assert (chain.links, chain.name) == ([link], "fake")


def test_an_empty_chain_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one model"):
        CaptionChain([])
