from __future__ import annotations

import io
import warnings

import pytest
from PIL import Image, ImageCms, ImageFile

from reimagine.errors import InvalidImage
from reimagine.imaging import MAX_OUTPUT_BYTES, describe, fit_png, image_size, prepare_for_model, to_png
from tests.fixtures import images

BIG = 64_000_000


def prepare(data: bytes, **kwargs: int):
    kwargs.setdefault("max_pixels", BIG)
    return prepare_for_model(data, **kwargs)


@pytest.mark.parametrize("kind", sorted(images.ACCEPTED))
def test_every_accepted_kind_becomes_an_rgb_jpeg(kind: str) -> None:
    make, source_format = images.ACCEPTED[kind]
    data = make()

    result = prepare(data)

    out = images.decode(result.data)
    assert out.format == "JPEG"
    assert out.mode == "RGB"
    assert out.size == (result.width, result.height)
    assert result.source_format == source_format
    assert result.media_type == "image/jpeg"


def test_small_images_keep_their_size() -> None:
    result = prepare(images.png((64, 48)))
    assert (result.width, result.height) == (64, 48)
    assert (result.source_width, result.source_height) == (64, 48)


@pytest.mark.parametrize(("size", "expected"), [((3000, 1500), (1024, 512)), ((1500, 3000), (512, 1024))])
def test_longest_side_is_bounded_keeping_aspect(size: tuple[int, int], expected: tuple[int, int]) -> None:
    result = prepare(images.jpeg(size))
    assert (result.width, result.height) == expected
    assert (result.source_width, result.source_height) == size


def test_max_side_is_configurable() -> None:
    result = prepare(images.png((400, 200)), max_side=100)
    assert (result.width, result.height) == (100, 50)


def test_exif_orientation_is_applied() -> None:
    result = prepare(images.exif_rotated_jpeg((80, 40)))

    assert (result.width, result.height) == (40, 80)
    out = images.decode(result.data)
    top = out.getpixel((20, 10))
    bottom = out.getpixel((20, 70))
    assert top[0] > 150 and top[2] < 100  # red on top
    assert bottom[2] > 150 and bottom[0] < 100  # blue below


def test_animated_gif_uses_first_frame() -> None:
    out = images.decode(prepare(images.gif_animated()).data)
    r, g, b = out.getpixel((10, 10))
    assert r > 180 and g < 80 and b < 80


def test_cmyk_is_converted_to_rgb() -> None:
    r, g, b = images.decode(prepare(images.cmyk_jpeg()).data).getpixel((5, 5))
    assert r < 60 and g > 180 and b > 180  # cyan


def test_16_bit_is_scaled_not_clipped() -> None:
    r, g, b = images.decode(prepare(images.png_16bit(level=40000)).data).getpixel((5, 5))
    assert abs(r - 156) <= 3 and r == g == b


def test_palette_transparency_is_composited_on_white() -> None:
    out = images.decode(prepare(images.palette_alpha_png((32, 32))).data)
    assert min(out.getpixel((4, 16))) > 240  # transparent half: white
    r, _g, b = out.getpixel((28, 16))
    assert b > 180 and r < 80  # opaque half keeps its blue


def test_partial_alpha_is_blended_on_white() -> None:
    r, g, b = images.decode(prepare(images.rgba_png()).data).getpixel((5, 5))
    assert 110 < r < 145 and r == g == b


def test_transparent_webp_is_white() -> None:
    assert min(images.decode(prepare(images.webp_alpha()).data).getpixel((3, 3))) > 240


def test_empty_upload() -> None:
    with pytest.raises(InvalidImage) as caught:
        prepare(b"")
    assert caught.value.code == "UPLOAD_EMPTY"


@pytest.mark.parametrize("data", [b"hello, world", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", b"\x00" * 512])
def test_not_an_image(data: bytes) -> None:
    with pytest.raises(InvalidImage) as caught:
        prepare(data)
    assert caught.value.code == "NOT_AN_IMAGE"


@pytest.mark.parametrize("make", [images.bmp, images.tiff])
def test_other_image_formats_are_refused_by_their_bytes(make) -> None:
    with pytest.raises(InvalidImage) as caught:
        prepare(make())
    assert caught.value.code == "UNSUPPORTED_IMAGE_TYPE"
    assert not caught.value.retryable


def test_pixel_limit_is_checked_from_the_header() -> None:
    # 400x300 = 120000 pixels against a limit of 100000.
    with pytest.raises(InvalidImage) as caught:
        prepare(images.png((400, 300)), max_pixels=100_000)
    assert caught.value.code == "IMAGE_TOO_LARGE"


@pytest.mark.parametrize(("width", "height"), [(12_000, 12_000), (30_000, 30_000)])
def test_bomb_header_is_refused_before_decoding(width: int, height: int) -> None:
    # 144 MP trips Pillow's warning threshold, 900 MP its error; both must become IMAGE_TOO_LARGE.
    data = images.bomb_png(width, height)
    assert len(data) < 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may leak out
        with pytest.raises(InvalidImage) as caught:
            prepare(data, max_pixels=200_000_000_000)
    assert caught.value.code == "IMAGE_TOO_LARGE"


def test_pillow_global_limit_is_left_alone() -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(InvalidImage):
        prepare(images.bomb_png(), max_pixels=BIG)
    prepare(images.jpeg())
    assert before == Image.MAX_IMAGE_PIXELS


@pytest.mark.parametrize("make", [images.truncated_jpeg, images.truncated_png])
def test_truncated_data_is_refused(make) -> None:
    with pytest.raises(InvalidImage) as caught:
        prepare(make())
    assert caught.value.code == "IMAGE_TRUNCATED"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_refuses_to_run_if_truncated_images_were_switched_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError):
        prepare(images.truncated_jpeg())


def test_quality_setting_is_used() -> None:
    photo = images.photo_like(800, 600)
    low = prepare(photo, jpeg_quality=40)
    high = prepare(photo, jpeg_quality=90)
    assert len(low.data) < len(high.data)


def test_a_24_megapixel_photo_is_sent_under_200_kb() -> None:
    result = prepare(images.photo_like(6000, 4000))

    assert (result.source_width, result.source_height) == (6000, 4000)
    assert max(result.width, result.height) == 1024
    assert len(result.data) <= MAX_OUTPUT_BYTES < 200 * 1024


def test_image_size_reads_the_header() -> None:
    assert image_size(images.bomb_png(5000, 7000)) == (5000, 7000)
    assert image_size(images.webp((30, 20))) == (30, 20)


def test_describe_reports_bytes_sent() -> None:
    result = prepare(images.jpeg((2000, 1000)))
    facts = describe(result)
    assert facts["bytes_sent"] == len(result.data)
    assert facts["source_width"] == 2000 and facts["width"] == 1024
    assert facts["source_format"] == "JPEG"


# Nothing of the source's metadata goes to a model (issue 18, item 2).


@pytest.mark.parametrize("make", [images.gif_with_comment, images.png_with_text], ids=["gif", "png"])
def test_a_70000_byte_comment_does_not_stop_the_preparation(make) -> None:
    # Given a small picture whose comment is longer than a JPEG comment segment can hold
    data = make(b"c" * 70_000 if make is images.png_with_text else 70_000)
    # When it is prepared for the model
    result = prepare(data)
    # Then the picture is sent without it
    assert "comment" not in images.decode(result.data).info


def test_no_metadata_of_the_source_reaches_the_model() -> None:
    # Given a JPEG with EXIF (orientation and a camera's make), XMP, an ICC profile and a comment
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "Secret Camera Co"
    source = io.BytesIO()
    Image.new("RGB", (80, 40), images.RED).save(
        source,
        "JPEG",
        exif=exif.tobytes(),
        xmp=b"<x:xmpmeta>private</x:xmpmeta>",
        comment=b"note",
        icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
    )
    # When it is prepared
    result = prepare(source.getvalue())
    # Then the model gets its pixels, upright, and nothing else
    out = images.decode(result.data)
    assert ((out.width, out.height), sorted(set(out.info) & {"exif", "xmp", "icc_profile", "comment"})) == (
        (40, 80),
        [],
    )


def test_an_unreadable_exif_block_leaves_the_picture_as_stored() -> None:
    # Given a JPEG whose EXIF block is cut short
    data = images.jpeg((64, 48))
    data = data[:2] + b"\xff\xe1\x00\x14Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff\x00\x01" + data[2:]
    # When it is prepared, Then it is sent unrotated
    result = prepare(data)
    assert (result.width, result.height) == (64, 48)


# Provider pictures get the upload bounds and are stored at the size asked (issue 18, item 5).


def test_a_provider_picture_over_the_scan_limit_is_refused() -> None:
    # Given a provider's answer that is the progressive-JPEG scan bomb
    with pytest.raises(InvalidImage) as caught:
        to_png(images.scan_bomb_jpeg(repeats=300))
    # Then it is refused before decoding, as an upload is
    assert caught.value.code == "IMAGE_TOO_COMPLEX"


def test_a_provider_picture_over_the_cpu_budget_is_refused() -> None:
    data = images.progressive_jpeg((1500, 1500), quality=95, noisy=True)
    with pytest.raises(InvalidImage) as caught:
        to_png(data, decode_cpu_seconds=0.001)
    assert caught.value.code == "IMAGE_TOO_COMPLEX"


def test_a_provider_picture_flood_is_refused() -> None:
    with pytest.raises(InvalidImage) as caught:
        to_png(images.png_with_chunks(40_000))
    assert caught.value.code == "IMAGE_TOO_COMPLEX"


def test_a_provider_picture_is_never_stored_over_1536_px() -> None:
    # Given a provider that answers 3000x1500 whatever size was asked
    png = to_png(images.png((3000, 1500)))
    # Then the stored picture is 1536 px on its long side
    assert images.decode(png).size == (1536, 768)


def test_a_provider_picture_is_stored_at_the_size_asked() -> None:
    assert images.decode(to_png(images.jpeg((2000, 2000)), max_side=768)).size == (768, 768)


def test_a_picture_that_fits_is_kept_as_it_is() -> None:
    png = images.png((500, 300))
    assert fit_png(png, 768) is png


def test_a_picture_too_big_for_the_size_asked_is_shrunk_to_it() -> None:
    assert images.decode(fit_png(images.png((1000, 500)), 768)).size == (768, 384)


def test_a_format_we_refuse_is_named_without_being_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given Pillow's open recording which formats it was allowed to try
    tried: list[object] = []
    original = Image.open

    def recording_open(fp, mode="r", formats=None):  # type: ignore[no-untyped-def]
        tried.append(formats)
        return original(fp, mode, formats)

    monkeypatch.setattr(Image, "open", recording_open)
    # When a TIFF is prepared
    with pytest.raises(InvalidImage) as caught:
        prepare(images.tiff())
    # Then it is refused by name, and only our own formats' parsers ever saw it
    assert (caught.value.code, tried) == ("UNSUPPORTED_IMAGE_TYPE", [("JPEG", "PNG", "WEBP", "GIF")])
