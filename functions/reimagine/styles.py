"""The styles a user may choose: a built-in set, which operators extend or replace through configuration.

A style is an id (what the API, the record and the CLI carry), a name and a description (what a person
reads), and a phrase (what the image model reads, ahead of the caption: see `prompts.build_prompt`).

The `STYLES` setting, when set, is JSON:

    {"replace": false, "default": "watercolour",
     "styles": [{"id": "neon", "name": "Neon", "description": "Glowing signs at night",
                 "phrase": "a neon-lit night scene, glowing tubes, deep shadows"}]}

With `replace` false (the default) the listed styles are added to the built-in ones (a listed id
replaces the built-in style of that id); with `replace` true they are the whole set. `default`
names the style used when a request names none (else the built-in default, else the first listed).
A setting that does not parse stops the function at start, with the reason, rather than at a request.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from reimagine.prompts import MAX_PROMPT_CHARS

# A phrase leaves at least half of the prompt to the caption (the prompt is cut at its end).
MAX_PHRASE_CHARS = MAX_PROMPT_CHARS // 2 - 40
STYLE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"


class Style(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=STYLE_ID_PATTERN)
    name: str = Field(min_length=1, max_length=40)
    description: str = Field(min_length=1, max_length=160)
    phrase: str = Field(min_length=1, max_length=MAX_PHRASE_CHARS)


BUILT_IN: tuple[Style, ...] = (
    Style(
        id="illustration",
        name="Illustration",
        description="A vivid, detailed illustration: bold colour, clean shapes.",
        phrase="a vivid, detailed illustration",
    ),
    Style(
        id="watercolour",
        name="Watercolour",
        description="Soft washes of colour bleeding into textured paper.",
        phrase="a loose watercolour painting, soft washes of colour bleeding into textured paper, visible brush marks",
    ),
    Style(
        id="oil-painting",
        name="Oil painting",
        description="Rich colour and thick, visible brushstrokes on canvas.",
        phrase="an oil painting on canvas, thick impasto brushstrokes, rich warm colours, gallery lighting",
    ),
    Style(
        id="ukiyo-e",
        name="Ukiyo-e woodblock",
        description="A Japanese woodblock print: flat colour, bold outlines.",
        phrase="a Japanese ukiyo-e woodblock print, flat areas of colour, bold black outlines, washi paper texture",
    ),
    Style(
        id="pixel-art",
        name="Pixel art",
        description="A retro video-game scene made of large square pixels.",
        phrase="16-bit pixel art, a retro video game scene, large square pixels, a limited colour palette",
    ),
    Style(
        id="pencil-sketch",
        name="Pencil sketch",
        description="A graphite drawing with hatching, in black and white.",
        phrase="a graphite pencil sketch on white paper, fine hatching and cross-hatching, black and white",
    ),
    Style(
        id="clay-3d",
        name="3D clay",
        description="A playful scene modelled in soft clay, like stop-motion.",
        phrase="a 3D claymation scene, everything modelled in soft plasticine, rounded shapes, studio lighting",
    ),
    Style(
        id="comic-book",
        name="Comic book",
        description="Inked outlines, halftone dots and bright flat colour.",
        phrase="a comic book panel, heavy inked outlines, halftone dots, bright flat colours, dramatic angles",
    ),
)
BUILT_IN_DEFAULT = "illustration"


class StyleSettings(BaseModel):
    """The `STYLES` setting, parsed."""

    model_config = ConfigDict(extra="forbid")

    replace: bool = False
    default: str | None = Field(default=None, pattern=STYLE_ID_PATTERN)
    styles: list[Style] = Field(default_factory=list, max_length=24)

    @model_validator(mode="after")
    def _not_empty_when_replacing(self) -> StyleSettings:
        if self.replace and not self.styles:
            raise ValueError("replace is true but no styles are listed")
        return self


class StylesNotValid(ValueError):
    """The STYLES setting cannot be used; the message says why, in an operator's words."""


class Catalogue:
    """The styles on offer, in order, and the one used when a request names none."""

    def __init__(self, styles: tuple[Style, ...], default: str) -> None:
        self.styles = styles
        self._by_id = {style.id: style for style in styles}
        if default not in self._by_id:
            raise StylesNotValid(f"the default style {default!r} is not one of the styles: {', '.join(self.ids)}")
        self.default = default

    @property
    def ids(self) -> list[str]:
        return [style.id for style in self.styles]

    def get(self, style_id: str | None) -> Style | None:
        return self._by_id.get(style_id or self.default)

    def for_record(self, style_id: str | None) -> Style:
        """The style to paint a request in: its own, or the default when it names none or one since removed."""
        return self._by_id.get(style_id or "") or self._by_id[self.default]


@lru_cache(maxsize=4)
def catalogue(setting: str = "") -> Catalogue:
    """The catalogue configured by the `STYLES` setting (empty: the built-in set)."""
    if not setting.strip():
        return Catalogue(BUILT_IN, BUILT_IN_DEFAULT)
    try:
        parsed = StyleSettings.model_validate_json(setting)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'STYLES'}: {e['msg']}" for e in exc.errors())
        raise StylesNotValid(f"STYLES is not valid: {where}") from None
    if parsed.replace:
        styles = tuple({style.id: style for style in parsed.styles}.values())
    else:
        merged = {style.id: style for style in BUILT_IN}
        merged.update({style.id: style for style in parsed.styles})
        styles = tuple(merged.values())
    default = parsed.default or (BUILT_IN_DEFAULT if not parsed.replace else styles[0].id)
    return Catalogue(styles, default)
