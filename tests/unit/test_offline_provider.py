from __future__ import annotations

import io
import re

import pytest
from PIL import Image

import reimagine.providers.offline as offline
from reimagine.config import Settings
from reimagine.errors import ProviderError
from reimagine.imaging import prepare_for_model
from reimagine.model_call import Deadline, ModelInput
from reimagine.prompts import MAX_PROMPT_CHARS, build_prompt
from reimagine.providers import build_captioner, build_generator
from tests.fixtures import images

DEADLINE = Deadline.after(30)
# Every word an offline caption may use: measurements only, never objects or scenes.
ALLOWED_WORDS = {
    "a", "an", "image", "dominated", "by", "and", "with", "contrast", "detail", "areas",
    "dark", "dim", "mid-toned", "bright", "landscape", "portrait", "square",
    "soft", "moderate", "strong", "smooth", "open", "some", "fine", "busy", "intricate",
} | {word for name in offline.PALETTE for word in name.split()}  # fmt: skip


def caption_of(data: bytes) -> str:
    return offline.OfflineCaptioner().caption(prepare_for_model(data, max_pixels=10**8), DEADLINE)


def picture(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def split_picture(size: tuple[int, int], left: tuple[int, int, int], right: tuple[int, int, int]) -> bytes:
    img = Image.new("RGB", size, left)
    img.paste(right, (size[0] // 2, 0, size[0], size[1]))
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


# --- captioner -----------------------------------------------------------------------------------


def test_caption_is_deterministic() -> None:
    data = images.photo_like(640, 480)
    assert caption_of(data) == caption_of(data)


def test_caption_describes_measured_orientation_and_colour() -> None:
    assert caption_of(picture((300, 200), (130, 190, 235))) == (
        "A bright landscape image dominated by sky blue, with soft contrast and smooth, open areas."
    )
    assert "portrait image dominated by dark green" in caption_of(picture((100, 200), (25, 75, 35)))
    assert "square image" in caption_of(picture((100, 100), (245, 245, 245)))


@pytest.mark.parametrize("kind", sorted(images.ODD_SHAPES))
def test_every_valid_shape_and_kind_is_captioned(kind: str) -> None:
    # Given a valid image of an awkward shape (1x1, 100:1 or thinner) or kind
    make, _ = images.ODD_SHAPES[kind]
    # When the offline captioner measures it
    caption = caption_of(make())
    # Then it gets a sentence in the usual form
    assert re.fullmatch(r"An? [\w-]+ (landscape|portrait|square) image dominated by .+\.", caption), caption


@pytest.mark.parametrize(
    ("size", "orientation"), [((1, 1), "square"), ((4000, 40), "landscape"), ((40, 4000), "portrait")]
)
def test_orientation_of_extreme_shapes(size: tuple[int, int], orientation: str) -> None:
    assert f" {orientation} image" in caption_of(images.png(size))


@pytest.mark.parametrize("size", [(640, 3), (3, 640)])
def test_detail_along_a_strip_is_measured(size: tuple[int, int]) -> None:
    # Given a strip 3 pixels thin, striped along its length
    # Then its detail is measured (a strip has no inside for the edge filter; it must not read as smooth)
    assert "busy, intricate detail" in caption_of(images.stripes_png(size))


def test_caption_names_two_colours_when_both_cover_the_picture() -> None:
    text = caption_of(split_picture((200, 200), (22, 30, 85), (235, 135, 35)))
    assert re.search(r"dominated by (navy and orange|orange and navy),", text), text
    assert "soft contrast" not in text


def test_brightness_is_measured() -> None:
    assert caption_of(picture((64, 64), (10, 10, 10))).startswith("A dark ")
    assert caption_of(picture((64, 64), (250, 250, 250))).startswith("A bright ")


def test_detail_is_measured() -> None:
    noise = io.BytesIO()
    Image.effect_noise((256, 256), 90).convert("RGB").save(noise, "PNG")
    assert "busy, intricate detail" in caption_of(noise.getvalue())
    assert "smooth, open areas" in caption_of(picture((256, 256), (128, 128, 128)))


@pytest.mark.parametrize("kind", sorted(images.ACCEPTED))
def test_caption_uses_only_measurement_words(kind: str) -> None:
    text = caption_of(images.ACCEPTED[kind][0]())
    words = set(re.findall(r"[a-z-]+", text.lower()))
    assert words <= ALLOWED_WORDS, words - ALLOWED_WORDS
    assert text.endswith(".") and text.count(".") == 1


def test_different_images_get_different_captions() -> None:
    captions = {caption_of(make()) for make, _ in images.ACCEPTED.values()}
    assert len(captions) >= 7


def test_module_says_plainly_it_is_not_ai() -> None:
    doc = " ".join((offline.__doc__ or "").lower().split())
    assert "not ai" in doc
    assert "measured description" in doc
    assert "procedural rendering" in doc
    assert offline.OfflineCaptioner.name == offline.OfflineGenerator.name == "offline"


def test_unreadable_input_is_a_provider_error() -> None:
    broken = ModelInput(data=b"nope", width=1, height=1, source_width=1, source_height=1, source_format="JPEG")
    with pytest.raises(ProviderError) as caught:
        offline.OfflineCaptioner().caption(broken, DEADLINE)
    assert caught.value.code == "PROVIDER_REJECTED" and not caught.value.retryable


# --- generator -----------------------------------------------------------------------------------


def test_generator_is_byte_identical_for_the_same_prompt() -> None:
    generator = offline.OfflineGenerator(size=128)
    prompt = "a vivid illustration: a bright landscape dominated by sky blue and white"
    assert generator.generate(prompt, DEADLINE) == generator.generate(prompt, DEADLINE)


def test_generator_output_is_a_square_png_of_the_configured_size() -> None:
    data = offline.OfflineGenerator(size=96).generate("anything", DEADLINE)
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.size == (96, 96) and img.mode == "RGB"


def test_different_prompts_give_different_pictures() -> None:
    generator = offline.OfflineGenerator(size=64)
    outputs = {generator.generate(f"prompt number {i}", DEADLINE) for i in range(5)}
    assert len(outputs) == 5


def test_colours_named_in_the_prompt_dominate_the_picture() -> None:
    data = offline.OfflineGenerator(size=128).generate("a square image dominated by red and orange", DEADLINE)
    mean = Image.open(io.BytesIO(data)).convert("RGB").resize((1, 1), Image.Resampling.BOX)
    r, g, b = mean.getpixel((0, 0))
    assert r > g > b and r - b > 80


def test_colour_words_are_read_longest_first() -> None:
    assert offline.colours_in("Sky blue over navy, then blue; gray too") == [
        offline.PALETTE["sky blue"],
        offline.PALETTE["navy"],
        offline.PALETTE["blue"],
        offline.PALETTE["grey"],
    ]


def test_providers_are_built_from_settings() -> None:
    settings = Settings(provider="offline", result_size=200)
    generator = build_generator(settings)
    assert isinstance(generator, offline.OfflineGenerator) and generator.size == 200
    assert isinstance(build_captioner(settings), offline.OfflineCaptioner)


# --- prompt --------------------------------------------------------------------------------------


def test_prompt_combines_style_and_caption_on_one_line() -> None:
    prompt = build_prompt('  "A dim\n\tportrait   image."\x00 ', "a vivid, detailed illustration.")
    assert prompt == "a vivid, detailed illustration, based on this description: A dim portrait image."


def test_prompt_is_capped_at_a_word_boundary() -> None:
    prompt = build_prompt("word " * 400, "style")
    assert len(prompt) <= MAX_PROMPT_CHARS
    assert prompt.endswith("word")


def test_prompt_without_caption_is_the_style() -> None:
    assert build_prompt("   ", "an oil painting") == "an oil painting"
