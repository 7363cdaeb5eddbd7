"""Styles (issue 21, item 1): the set on offer, choosing one, the prompt the image model gets."""

from __future__ import annotations

from typing import ClassVar

import pytest

from reimagine import clients
from reimagine.handlers import api
from reimagine.model_call import Deadline
from reimagine.prompts import MAX_PROMPT_CHARS, build_prompt
from reimagine.request_body import CreateRequestBody
from reimagine.steps import api as api_steps
from reimagine.steps.caption import caption_upload
from reimagine.steps.generate import generate_result
from reimagine.styles import BUILT_IN, MAX_PHRASE_CHARS, StylesNotValid, catalogue
from tests.fixtures import images
from tests.fixtures.api_calls import call

LONGEST_CAPTION = "word " * 200


def test_get_styles_lists_the_built_in_set_and_the_default(aws) -> None:
    # When a client asks which styles there are
    response = call("GET", "/styles")
    # Then it gets each style's id, name and description, and the default
    assert response.json() == {
        "default": "illustration",
        "styles": [{"id": s.id, "name": s.name, "description": s.description} for s in BUILT_IN],
    }


def test_the_built_in_set_has_six_to_eight_distinct_styles() -> None:
    assert (6 <= len(BUILT_IN) <= 8, len({s.id for s in BUILT_IN}), len({s.phrase for s in BUILT_IN})) == (
        True,
        len(BUILT_IN),
        len(BUILT_IN),
    )


@pytest.mark.parametrize("style", BUILT_IN, ids=[s.id for s in BUILT_IN])
def test_each_style_keeps_its_whole_phrase_within_the_prompt_bound(style) -> None:
    # Given the longest caption there can be
    prompt = build_prompt(LONGEST_CAPTION, style.phrase)
    # Then the prompt is within the bound, starts with the whole phrase, and keeps room for the caption
    assert (len(prompt) <= MAX_PROMPT_CHARS, prompt.startswith(style.phrase + ","), len(prompt) > 400) == (
        True,
        True,
        True,
    )


def test_a_chosen_style_is_recorded_and_shown(aws) -> None:
    # When a request chooses ukiyo-e
    created = call(
        "POST", "/requests", body={"email": "a@example.com", "content_type": "image/png", "style": "ukiyo-e"}
    )
    # Then the record keeps it and GET /requests/{id} names it
    view = call("GET", f"/requests/{created.json()['id']}").json()
    assert (clients.store().get(view["id"]).style, view["style"]) == (
        "ukiyo-e",
        {"id": "ukiyo-e", "name": "Ukiyo-e woodblock"},
    )


def test_no_style_means_the_default(aws) -> None:
    created = call("POST", "/requests", body={"email": "a@example.com", "content_type": "image/png"})
    assert call("GET", f"/requests/{created.json()['id']}").json()["style"]["id"] == "illustration"


def test_an_unknown_style_is_422_with_the_ids_allowed_and_creates_nothing(aws) -> None:
    # When a request names a style there is not
    response = call(
        "POST", "/requests", body={"email": "a@example.com", "content_type": "image/png", "style": "vaporwave"}
    )
    # Then 422 UNKNOWN_STYLE lists the ids allowed, and nothing was made
    error = response.json()["error"]
    assert (
        response.status,
        error["code"],
        error["details"],
        clients.dynamodb().scan(TableName=aws.table_name)["Count"],
    ) == (
        422,
        "UNKNOWN_STYLE",
        {"allowed": [s.id for s in BUILT_IN]},
        0,
    )


def test_operators_extend_the_set_through_configuration(aws, monkeypatch) -> None:
    # Given a STYLES setting that adds one style and makes it the default
    setting = (
        '{"default": "neon", "styles": [{"id": "neon", "name": "Neon", "description": "Glowing signs at night.",'
        ' "phrase": "a neon-lit night scene, glowing tubes"}]}'
    )
    monkeypatch.setattr(api, "settings", lambda: aws.model_copy(update={"styles": setting}))
    # Then GET /styles offers the built-in ones and the new one, which is the default
    listed = call("GET", "/styles").json()
    assert (listed["default"], [s["id"] for s in listed["styles"]]) == ("neon", [*(s.id for s in BUILT_IN), "neon"])


def test_operators_replace_the_set_through_configuration() -> None:
    setting = (
        '{"replace": true, "styles": [{"id": "sepia", "name": "Sepia", "description": "Old photo.",'
        ' "phrase": "a sepia photograph"}]}'
    )
    styles = catalogue(setting)
    assert (styles.ids, styles.default) == (["sepia"], "sepia")


def test_a_phrase_too_long_for_the_prompt_is_refused_at_start() -> None:
    phrase = "x" * (MAX_PHRASE_CHARS + 1)
    setting = f'{{"styles": [{{"id": "long", "name": "Long", "description": "Too long.", "phrase": "{phrase}"}}]}}'
    with pytest.raises(StylesNotValid, match=r"styles\.0\.phrase"):
        catalogue(setting)


class _Captioner:
    name, model = "fake", "fake-vision-1"

    def caption(self, image, deadline) -> str:
        return "A green rectangle."


class _PromptRecorder:
    """A painter that keeps the prompts it was given."""

    name, model = "fake", "fake-painter-1"
    prompts: ClassVar[list[str]] = []

    def generate(self, prompt: str, deadline) -> bytes:
        _PromptRecorder.prompts.append(prompt)
        return images.png((64, 64))


def test_the_image_model_prompt_carries_the_chosen_style(aws) -> None:
    # Given a captioned request that chose pixel art
    body = CreateRequestBody(email="jane@example.com", content_type="image/png", style="pixel-art")
    request_id = api_steps.create_request(body, store=clients.store(), s3=clients.s3(), settings=aws).id
    clients.s3().put_object(Bucket=aws.uploads_bucket, Key=f"uploads/{request_id}", Body=images.png())
    steps = {"store": clients.store(), "s3": clients.s3(), "settings": aws, "deadline": Deadline.after(30)}
    caption_upload(request_id, captioner=_Captioner, **steps)  # type: ignore[arg-type]
    # When the picture is painted
    _PromptRecorder.prompts.clear()
    generate_result(request_id, generator=_PromptRecorder, **steps)  # type: ignore[arg-type]
    # Then the model read the pixel-art phrase, then the caption
    pixel_art = next(s for s in BUILT_IN if s.id == "pixel-art")
    assert _PromptRecorder.prompts == [f"{pixel_art.phrase}, based on this description: A green rectangle."]
