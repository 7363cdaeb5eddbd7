"""Container floods: whatever is accepted costs bounded work before Pillow parses a byte of it.

A valid small picture padded to megabytes with tiny segments, chunks or blocks cost seconds of CPU
and hundreds of MB inside `Image.open`, before the decode budget starts. The walk refuses each kind
of flood from the bytes, and lets real files through.
"""

from __future__ import annotations

import pytest
from PIL import Image

from reimagine.container_walk import (
    MAX_GIF_SUB_BLOCKS,
    MAX_JPEG_SEGMENTS,
    MAX_METADATA_BYTES,
    MAX_PNG_CHUNKS,
    MAX_STRAY_BYTES,
    MAX_WEBP_CHUNKS,
    check_container,
)
from reimagine.errors import InvalidImage
from reimagine.imaging import image_size, prepare_for_model
from tests.fixtures import images

BIG = 64_000_000

FLOODS = {
    "jpeg-comment-segments": lambda: images.jpeg_with_segments(MAX_JPEG_SEGMENTS + 1),
    "jpeg-fill-bytes": lambda: images.jpeg_with_fill(MAX_STRAY_BYTES + 1),
    "jpeg-metadata": lambda: images.jpeg_with_segments(300, b"x" * 60_000, marker=0xE1),
    "png-tiny-chunks": lambda: images.png_with_chunks(MAX_PNG_CHUNKS + 1),
    "png-tiny-chunks-after-the-pixels": lambda: images.png_with_chunks(MAX_PNG_CHUNKS + 1, after_idat=True),
    "png-metadata": lambda: images.png_with_chunks(17, b"tEXt", b"c\x00" + b"x" * 2**20),
    "gif-comment-blocks": lambda: images.gif_with_blocks(MAX_GIF_SUB_BLOCKS // 2 + 1),
    "webp-tiny-chunks": lambda: images.webp_with_chunks(MAX_WEBP_CHUNKS + 1),
}


@pytest.mark.parametrize("kind", sorted(FLOODS))
def test_a_flood_is_refused_as_too_complex(kind: str) -> None:
    # Given a valid small picture padded with more structure than any camera or editor writes
    data = FLOODS[kind]()
    # When it is prepared for the model
    with pytest.raises(InvalidImage) as caught:
        prepare_for_model(data, max_pixels=BIG)
    # Then it is refused with IMAGE_TOO_COMPLEX, which retrying cannot change
    assert (caught.value.code, caught.value.retryable) == ("IMAGE_TOO_COMPLEX", False)


def test_a_flood_is_refused_before_pillow_parses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given Pillow's open recording being called
    opened: list[object] = []
    original = Image.open

    def recording_open(*args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(Image, "open", recording_open)
    # When a JPEG of millions of comment segments (the 20 MiB flood of the report, in small) is prepared
    with pytest.raises(InvalidImage):
        prepare_for_model(images.jpeg_with_segments(200_000), max_pixels=BIG)
    # Then Pillow never saw it
    assert opened == []


def test_the_refusal_says_what_is_wrong_in_plain_words() -> None:
    with pytest.raises(InvalidImage) as caught:
        prepare_for_model(images.png_with_chunks(MAX_PNG_CHUNKS + 1), max_pixels=BIG)
    assert caught.value.message == (
        f"the PNG has more than {MAX_PNG_CHUNKS} chunks; save it again without the extra data"
    )


def test_the_header_reader_refuses_floods_too() -> None:
    with pytest.raises(InvalidImage) as caught:
        image_size(images.gif_with_blocks(MAX_GIF_SUB_BLOCKS))
    assert caught.value.code == "IMAGE_TOO_COMPLEX"


REAL_STRUCTURE = {
    # An ICC profile split over APP2 segments, as big as a print profile gets
    "jpeg-large-icc-profile": lambda: images.jpeg_with_segments(60, b"ICC_PROFILE\x00" + b"\x01" * 65_000, 0xE2),
    # Image data in 1 KiB IDAT chunks: smaller than libpng's 8 KiB
    "png-small-idat-chunks": lambda: images.png_with_chunks(20_000, b"IDAT"),
    "gif-long-comment": lambda: images.gif_with_comment(200_000),
    "webp-exif-and-xmp": lambda: images.webp_with_chunks(2, b"XMP ", b"x" * 100_000),
    "jpeg-a-few-fill-bytes": lambda: images.jpeg_with_fill(16),
}


@pytest.mark.parametrize("kind", sorted(REAL_STRUCTURE))
def test_structure_real_files_have_is_accepted(kind: str) -> None:
    # Given a picture with as much structure and metadata as real files carry
    data = REAL_STRUCTURE[kind]()
    # When it is prepared, Then it is accepted
    assert prepare_for_model(data, max_pixels=BIG).width > 0


def test_metadata_up_to_the_limit_is_accepted() -> None:
    # 15 MiB of APP1 in 240 segments of 64 KiB: a phone's extended XMP is a few MiB
    data = images.jpeg_with_segments(240, b"x" * 65_000, marker=0xE1)
    assert check_container(data).metadata_bytes <= MAX_METADATA_BYTES  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", [b"zTXt", b"iCCP"])
def test_a_compressed_metadata_bomb_is_too_complex_not_truncated(kind: bytes) -> None:
    # Given a PNG whose compressed text or ICC profile inflates to 50 MiB
    data = images.iccp_bomb_png() if kind == b"iCCP" else images.png_with_text(b"\x00" * 50 * 2**20, kind=kind)
    # When it is prepared
    with pytest.raises(InvalidImage) as caught:
        prepare_for_model(data, max_pixels=BIG)
    # Then it is refused as too complex (a compression bomb), not as a corrupt file
    assert caught.value.code == "IMAGE_TOO_COMPLEX"
