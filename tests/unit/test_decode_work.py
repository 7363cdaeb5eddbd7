"""Decode-work bombs: a small upload under every byte and pixel limit must not cost minutes of CPU."""

from __future__ import annotations

import pytest
from PIL import ImageFile

from reimagine.container_walk import walk_jpeg
from reimagine.decode_work import MAX_JPEG_SCANS, count_jpeg_scans, scan_limit
from reimagine.errors import InvalidImage
from reimagine.imaging import prepare_for_model
from tests.fixtures import images

BIG = 64_000_000


def test_a_progressive_jpeg_has_the_scans_libjpeg_writes() -> None:
    # Given a progressive JPEG from libjpeg's standard colour script
    data = images.progressive_jpeg()
    # When its scans are counted from the markers
    # Then there are its 10
    assert count_jpeg_scans(data) == 10


def test_a_baseline_jpeg_has_one_scan() -> None:
    assert count_jpeg_scans(images.jpeg()) == 1


def test_scans_inside_metadata_are_not_counted() -> None:
    # Given a JPEG whose APP1 segment carries a whole progressive JPEG (as an EXIF thumbnail does)
    inner = images.progressive_jpeg((32, 32))
    outer = images.jpeg()
    app1 = b"\xff\xe1" + (len(inner) + 2).to_bytes(2, "big") + inner
    data = outer[:2] + app1 + outer[2:]
    # Then only the outer image's one scan counts
    assert count_jpeg_scans(data) == 1


def test_stray_bytes_between_scans_do_not_hide_the_scans_after_them() -> None:
    # Given the bomb with garbage after its first scan (libjpeg skips it with a warning and decodes on)
    data = images.scan_bomb_jpeg(repeats=100)
    end_of_first_scan = images.jpeg_scans(data)[0][1]
    data = data[:end_of_first_scan] + b"\x00garbage" + data[end_of_first_scan:]
    # Then every scan is still counted
    assert count_jpeg_scans(data, stop_after=1000) == 110


def test_counting_stops_past_the_limit() -> None:
    data = images.scan_bomb_jpeg(repeats=1000)
    assert count_jpeg_scans(data, stop_after=20) == 21


def test_a_jpeg_repeating_its_last_scan_is_refused_as_too_complex() -> None:
    # Given the decode-work bomb: a progressive JPEG whose last scan is repeated 300 times
    data = images.scan_bomb_jpeg(repeats=300)
    # When it is prepared for the model
    with pytest.raises(InvalidImage) as caught:
        prepare_for_model(data, max_pixels=BIG)
    # Then it is refused with a code of its own, which retrying cannot change
    assert (caught.value.code, caught.value.retryable) == ("IMAGE_TOO_COMPLEX", False)


def test_the_scan_bomb_is_refused_before_any_pixel_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a decoder that records being started
    loads: list[object] = []
    original = ImageFile.ImageFile.load

    def recording_load(self: ImageFile.ImageFile):  # type: ignore[no-untyped-def]
        loads.append(self)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    # When the bomb is prepared
    with pytest.raises(InvalidImage):
        prepare_for_model(images.scan_bomb_jpeg(repeats=300), max_pixels=BIG)
    # Then the decoder never ran
    assert loads == []


@pytest.mark.parametrize(
    ("size", "limit"), [((256, 256), MAX_JPEG_SCANS), ((4000, 4000), 64), ((8000, 8000), 16), ((20_000, 20_000), 12)]
)
def test_the_scan_limit_shrinks_as_the_picture_grows(size: tuple[int, int], limit: int) -> None:
    # Each scan is a pass over every coefficient: 16 passes at the 64 MP pixel limit, never under 12
    assert scan_limit(*size) == limit


def test_a_large_jpeg_over_the_scan_limit_for_its_size_is_refused_before_decoding() -> None:
    # Given a 5000x5000 progressive JPEG with 50 scans: under the absolute limit, over the 40 its size allows
    data = images.scan_bomb_jpeg((5000, 5000), repeats=40)
    with pytest.raises(InvalidImage) as caught:
        prepare_for_model(data, max_pixels=BIG)
    assert (caught.value.code, "more than 40 scans for its 5000x5000 pixels" in caught.value.message) == (
        "IMAGE_TOO_COMPLEX",
        True,
    )


def test_a_jpeg_at_the_scan_limit_is_accepted() -> None:
    # 10 scans of its own plus repeats up to the limit exactly
    data = images.scan_bomb_jpeg(repeats=MAX_JPEG_SCANS - 10)
    assert prepare_for_model(data, max_pixels=BIG).source_format == "JPEG"


def test_a_decode_over_its_cpu_budget_is_stopped_as_too_complex() -> None:
    # Given a detailed progressive JPEG (within the scan limit) and a budget far below its decode time
    data = images.progressive_jpeg((1500, 1500), quality=95, noisy=True)
    # When it is prepared under that budget
    with pytest.raises(InvalidImage) as caught:
        prepare_for_model(data, max_pixels=BIG, decode_cpu_seconds=0.001)
    # Then the decode is abandoned with IMAGE_TOO_COMPLEX, saying what the budget was
    assert (caught.value.code, "0.001 s of CPU" in caught.value.message) == ("IMAGE_TOO_COMPLEX", True)


def test_the_same_jpeg_decodes_under_the_default_budget() -> None:
    data = images.progressive_jpeg((1500, 1500), quality=95, noisy=True)
    assert prepare_for_model(data, max_pixels=BIG).width == 1024


def test_fill_bytes_before_a_marker_are_stray_bytes_not_segments() -> None:
    # Given a JPEG with 1000 0xFF fill bytes before its first marker after SOI
    plain = walk_jpeg(images.jpeg())
    # When it is walked
    walk = walk_jpeg(images.jpeg_with_fill(1000))
    # Then the fill is counted as stray bytes and the segments are those of the plain file
    assert (walk.segments, walk.stray_bytes, walk.scans) == (plain.segments, 1000, 1)
