"""The offline provider: no network, no model, and not AI.

`OfflineCaptioner` writes a measured description: it reports what simple statistics of the pixels
say (orientation, the dominant colours named from a fixed palette, brightness, contrast, how much
edge detail there is) and never claims to recognise objects. `OfflineGenerator` is a procedural
rendering: gradients and shapes coloured by the colour words of the prompt and laid out from a
stable hash of it. Both are deterministic (same input, same output, byte for byte), so the local
stack and the tests can run the whole pipeline without credentials.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageStat

from reimagine.errors import ProviderError

if TYPE_CHECKING:
    from reimagine.config import Settings
    from reimagine.model_call import Deadline, ModelInput

NAME = "offline"
RGB = tuple[int, int, int]

# Plain-English colour names with a representative sRGB value; the caption and the generator share it.
PALETTE: dict[str, RGB] = {
    "black": (18, 18, 18),
    "charcoal grey": (62, 62, 66),
    "grey": (128, 128, 128),
    "silver": (192, 192, 196),
    "white": (245, 245, 245),
    "red": (200, 35, 35),
    "dark red": (115, 20, 25),
    "orange": (235, 135, 35),
    "brown": (115, 75, 45),
    "beige": (215, 195, 160),
    "yellow": (238, 215, 55),
    "olive": (120, 120, 45),
    "green": (50, 150, 60),
    "dark green": (25, 75, 35),
    "teal": (25, 130, 130),
    "turquoise": (60, 205, 205),
    "sky blue": (130, 190, 235),
    "blue": (35, 75, 195),
    "navy": (22, 30, 85),
    "purple": (115, 55, 155),
    "pink": (235, 150, 185),
}
_NAMES = list(PALETTE)
# A colour must cover this share of the picture to be named (the first is always named).
_MIN_SHARE = 0.12
_MAX_COLOURS = 3
_ANALYSIS_SIDE = 128


@dataclass(frozen=True)
class Measurements:
    orientation: str  # landscape | portrait | square
    colours: tuple[str, ...]
    brightness: float  # mean HSV value, 0-255
    contrast: float  # standard deviation of luma
    edge_density: float  # mean edge strength, 0-255


def measure(image_bytes: bytes) -> Measurements:
    """Measure a (prepared) image. Work is done on a thumbnail, so cost does not grow with size."""
    try:
        with Image.open(io.BytesIO(image_bytes)) as img:
            img.draft("RGB", (_ANALYSIS_SIDE, _ANALYSIS_SIDE))
            width, height = img.size
            small = img.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise ProviderError(
            f"the prepared image could not be read ({type(exc).__name__})",
            code="PROVIDER_REJECTED",
            retryable=False,
        ) from None
    small.thumbnail((_ANALYSIS_SIDE, _ANALYSIS_SIDE), Image.Resampling.BOX)
    luma = small.convert("L")
    stats = ImageStat.Stat(luma)
    # Lightness as HSV value, so a saturated red reads as bright, not as its low luma.
    value = ImageStat.Stat(small.convert("HSV").getchannel("V"))
    edges = ImageStat.Stat(_edge_map(luma))
    return Measurements(
        orientation=_orientation(width, height),
        colours=_dominant_colours(small),
        brightness=value.mean[0],
        contrast=stats.stddev[0],
        edge_density=edges.mean[0],
    )


def _edge_map(luma: Image.Image) -> Image.Image:
    """Edge strength inside the 1-pixel border, which the filter leaves unfiltered.

    A picture thinner than 3 pixels (1x1, or a 100:1 strip once thumbnailed) has no inside: its
    rows or columns are repeated to 3 first, which adds no edges across them and keeps those along.
    """
    if luma.width < 3 or luma.height < 3:
        luma = luma.resize((max(3, luma.width), max(3, luma.height)), Image.Resampling.NEAREST)
    edge_map = luma.filter(ImageFilter.FIND_EDGES)
    return edge_map.crop((1, 1, edge_map.width - 1, edge_map.height - 1))


def describe_measurements(m: Measurements) -> str:
    """One sentence from the measurements; only words about light, colour and texture."""
    if m.brightness < 60:
        light = "dark"
    elif m.brightness < 105:
        light = "dim"
    elif m.brightness < 165:
        light = "mid-toned"
    else:
        light = "bright"
    if m.contrast < 30:
        contrast = "soft contrast"
    elif m.contrast < 60:
        contrast = "moderate contrast"
    else:
        contrast = "strong contrast"
    if m.edge_density < 6:
        texture = "smooth, open areas"
    elif m.edge_density < 18:
        texture = "some fine detail"
    else:
        texture = "busy, intricate detail"
    colours = _join(m.colours)
    article = "An" if light[0] in "aeiou" else "A"
    return f"{article} {light} {m.orientation} image dominated by {colours}, with {contrast} and {texture}."


class OfflineCaptioner:
    """A measured description of the picture (see the module docstring): honest, not AI."""

    name = NAME
    model = "offline-measurement"  # what the record names as the caption's model: an algorithm

    def caption(self, image: ModelInput, deadline: Deadline) -> str:
        return describe_measurements(measure(image.data))


class OfflineGenerator:
    """A procedural rendering from the prompt's words (see the module docstring): not AI."""

    name = NAME
    model = "offline-rendering"  # an algorithm, not a model

    def __init__(self, size: int = 768) -> None:
        self.size = size

    def generate(self, prompt: str, deadline: Deadline) -> bytes:
        return render(prompt, self.size)


def build_captioner(settings: Settings) -> OfflineCaptioner:
    return OfflineCaptioner()


def build_generator(settings: Settings) -> OfflineGenerator:
    return OfflineGenerator(size=settings.result_size)


def render(prompt: str, size: int) -> bytes:
    """A square PNG drawn from the prompt: same prompt, byte-identical PNG."""
    text = prompt.lower()
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - layout, not security
    colours = colours_in(text) or _colours_from_digest(digest)
    while len(colours) < 3:
        colours.append(_shade(colours[len(colours) - 1], rng.choice((0.55, 1.35))))

    picture = _gradient(size, colours[0], colours[1], _layout(text), rng)
    draw = ImageDraw.Draw(picture, "RGBA")
    busy = "busy" in text or "intricate" in text
    for _ in range(rng.randint(18, 28) if busy else rng.randint(6, 12)):
        _shape(draw, size, rng.choice(colours[1:] + colours[:1]), rng)
    if "soft" in text or "smooth" in text:
        picture = picture.filter(ImageFilter.GaussianBlur(radius=size / 90))
    if "bright" in text:
        picture = ImageEnhance.Brightness(picture).enhance(1.12)
    elif "dark" in text.replace("dark red", "").replace("dark green", ""):
        picture = ImageEnhance.Brightness(picture).enhance(0.75)
    if "strong contrast" in text:
        picture = ImageEnhance.Contrast(picture).enhance(1.3)

    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def colours_in(text: str) -> list[RGB]:
    """Palette colours named in the text, in order of appearance ("sky blue" is not also "blue")."""
    names = sorted(_NAMES, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r"|gray)\b")
    found: list[RGB] = []
    for match in pattern.finditer(text.lower()):
        name = "grey" if match.group(1) == "gray" else match.group(1)
        if PALETTE[name] not in found:
            found.append(PALETTE[name])
    return found


def _orientation(width: int, height: int) -> str:
    ratio = width / height
    if ratio > 1.1:
        return "landscape"
    if ratio < 1 / 1.1:
        return "portrait"
    return "square"


def _palette_image() -> Image.Image:
    values: list[int] = []
    for i in range(256):  # pad to 256 entries by cycling; index % len(names) recovers the name
        values.extend(PALETTE[_NAMES[i % len(_NAMES)]])
    palette = Image.new("P", (1, 1))
    palette.putpalette(values)
    return palette


_PALETTE_IMAGE = _palette_image()


def _dominant_colours(img: Image.Image) -> tuple[str, ...]:
    indexed = img.quantize(palette=_PALETTE_IMAGE, dither=Image.Dither.NONE)
    totals: dict[str, int] = {}
    for count, index in indexed.getcolors(256) or []:
        assert isinstance(index, int)  # a palette image counts palette indices
        name = _NAMES[index % len(_NAMES)]
        totals[name] = totals.get(name, 0) + count
    pixels = img.width * img.height
    # Ties are broken by palette order so the result never depends on dict ordering.
    ranked = sorted(totals.items(), key=lambda item: (-item[1], _NAMES.index(item[0])))
    chosen = [name for i, (name, count) in enumerate(ranked) if i == 0 or count / pixels >= _MIN_SHARE]
    return tuple(chosen[:_MAX_COLOURS])


def _join(words: tuple[str, ...]) -> str:
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def _colours_from_digest(digest: bytes) -> list[RGB]:
    return [PALETTE[_NAMES[b % len(_NAMES)]] for b in digest[8:11]]


def _shade(colour: RGB, factor: float) -> RGB:
    r, g, b = (max(0, min(255, round(c * factor))) for c in colour)
    return (r, g, b)


def _layout(text: str) -> str:
    for word in ("landscape", "portrait", "square"):
        if word in text:
            return word
    return "square"


def _gradient(size: int, start: RGB, end: RGB, layout: str, rng: random.Random) -> Image.Image:
    """Two-colour gradient: horizontal bands for landscape, vertical for portrait, radial for square."""
    if layout == "square":
        mask = Image.radial_gradient("L")
    else:
        mask = Image.linear_gradient("L")
        if layout == "portrait":
            mask = mask.rotate(90)
        mask = mask.rotate(rng.uniform(-12, 12), resample=Image.Resampling.BILINEAR, fillcolor=255)
    mask = mask.resize((size, size), Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGB", (size, size), end), Image.new("RGB", (size, size), start), mask)


def _shape(draw: ImageDraw.ImageDraw, size: int, colour: RGB, rng: random.Random) -> None:
    fill = (*_shade(colour, rng.uniform(0.8, 1.2)), rng.randint(60, 170))
    x, y = rng.uniform(-0.1, 1.0) * size, rng.uniform(-0.1, 1.0) * size
    w, h = rng.uniform(0.08, 0.45) * size, rng.uniform(0.08, 0.45) * size
    kind = rng.choice(("ellipse", "rectangle", "polygon"))
    if kind == "ellipse":
        draw.ellipse((x, y, x + w, y + h), fill=fill)
    elif kind == "rectangle":
        draw.rectangle((x, y, x + w, y + h), fill=fill)
    else:
        points = [(x + rng.uniform(0, w), y + rng.uniform(0, h)) for _ in range(rng.randint(3, 6))]
        draw.polygon(points, fill=fill)
