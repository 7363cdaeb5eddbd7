"""Turn untrusted upload bytes into a small RGB JPEG a captioning model can take.

Safety first: the format is sniffed from the bytes (never the declared type), the container's
structure is walked with a budget before Pillow parses it (`reimagine.container_walk`), the pixel
count is checked from the header before anything is decoded, the decode's work is bounded (a JPEG's
scans are counted first, and the decode runs under a CPU budget: `reimagine.decode_work`), truncated
data is an error, not a grey half-picture, and no metadata of the source reaches the model.
Speed second: JPEGs are decoded at reduced scale (DCT scaling via `draft`), so a 24-megapixel photo
costs a fraction of a full decode in time and memory.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from reimagine.container_walk import Flood, JpegWalk, check_container
from reimagine.decode_work import DECODE_BLOCK_BYTES, DECODE_CPU_SECONDS, BudgetedInput, TooComplex, scan_limit
from reimagine.errors import InvalidImage
from reimagine.model_call import ModelInput
from reimagine.observability import tracer

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
# Cameras write multi-picture JPEGs (MPO); Pillow opens them through the JPEG plugin.
_FORMAT_ALIASES = {"MPO": "JPEG"}
# Never send more than this to a model, whatever the quality setting asks for.
MAX_OUTPUT_BYTES = 200_000
_MIN_QUALITY = 50
_WHITE = (255, 255, 255)
# Errors Pillow raises on data that ends early or does not decode.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)
_BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)
# Provider pictures are stored at the size asked, and never larger than this on the long side.
MAX_PICTURE_SIDE = 1536
# EXIF orientation -> the transpose that shows the picture upright (as ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@tracer.capture_method(capture_response=False)
def prepare_for_model(
    data: bytes,
    *,
    max_pixels: int,
    max_side: int = 1024,
    jpeg_quality: int = 85,
    decode_cpu_seconds: float = DECODE_CPU_SECONDS,
) -> ModelInput:
    """Validate `data` as an image and return it as an RGB JPEG whose longest side is <= max_side.

    Nothing of the source's metadata is sent: only its orientation is applied to the pixels.
    Raises InvalidImage (UPLOAD_EMPTY, NOT_AN_IMAGE, UNSUPPORTED_IMAGE_TYPE, IMAGE_TOO_LARGE,
    IMAGE_TOO_COMPLEX, IMAGE_TRUNCATED).
    """
    if not data:
        raise InvalidImage("the file is empty; send a photo", code="UPLOAD_EMPTY")
    with _bounded_decode(data, max_pixels=max_pixels, max_side=max_side, cpu_seconds=decode_cpu_seconds) as (
        img,
        (source_width, source_height),
    ):
        source_format = _FORMAT_ALIASES.get(img.format or "", img.format or "")
        orientation = _orientation(img)
        # Shrink first, then orient the small picture: rotating the full-size decode would copy it.
        picture = _shrink(_to_rgb(img), max_side)
        picture.info = {}  # Pillow's writers would write the source's comment, XMP or ICC profile
        if orientation in _TRANSPOSE:
            picture = picture.transpose(_TRANSPOSE[orientation])
    encoded = _encode_jpeg(picture, jpeg_quality)
    return ModelInput(
        data=encoded,
        width=picture.width,
        height=picture.height,
        source_width=source_width,
        source_height=source_height,
        source_format=source_format,
    )


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the header alone (no pixel data is decoded)."""
    if not data:
        raise InvalidImage("the file is empty; send a photo", code="UPLOAD_EMPTY")
    _check_container(data)
    with _open(data) as img:
        return img.size


def to_png(
    data: bytes,
    *,
    max_pixels: int = 16_000_000,
    max_side: int = MAX_PICTURE_SIDE,
    decode_cpu_seconds: float = DECODE_CPU_SECONDS,
) -> bytes:
    """Re-encode a generated picture as PNG, no larger than `max_side` (at most MAX_PICTURE_SIDE).

    A provider's answer is as untrusted as an upload: it gets the same bounds (container walk, pixel
    count, JPEG scan count, CPU budget on the decode), and only its pixels are kept. Raises
    InvalidImage (the same codes as prepare_for_model); providers turn that into PROVIDER_BAD_RESPONSE.
    """
    if not data:
        raise InvalidImage("the picture is empty", code="UPLOAD_EMPTY")
    max_side = min(max_side, MAX_PICTURE_SIDE)
    with _bounded_decode(data, max_pixels=max_pixels, max_side=max_side, cpu_seconds=decode_cpu_seconds) as (img, _):
        picture = img if img.mode in ("RGB", "RGBA") else img.convert("RGBA" if _has_alpha(img) else "RGB")
        picture = _shrink(picture, max_side)
        picture.info = {}
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
    return buffer.getvalue()


def fit_png(png: bytes, max_side: int) -> bytes:
    """`png` as it is when it already fits in `max_side`; else re-encoded to fit (through to_png)."""
    if max(image_size(png)) <= min(max_side, MAX_PICTURE_SIDE):
        return png
    return to_png(png, max_side=max_side)


def describe(model_input: ModelInput) -> dict[str, Any]:
    """What was sent to the model, for structured logs."""
    return {
        "source_format": model_input.source_format,
        "source_width": model_input.source_width,
        "source_height": model_input.source_height,
        "width": model_input.width,
        "height": model_input.height,
        "bytes_sent": len(model_input.data),
        "media_type": model_input.media_type,
    }


@contextmanager
def _bounded_decode(
    data: bytes, *, max_pixels: int, max_side: int, cpu_seconds: float
) -> Iterator[tuple[Image.Image, tuple[int, int]]]:
    """Open `data` and decode its (first) picture within every bound; yield it and its size in the file.

    In order: the container's structure is walked (floods refused before Pillow parses them), the
    pixel count is read from the header, a JPEG's scans are counted, and the decode runs under a
    CPU budget. A JPEG is decoded at reduced scale, never below what `max_side` needs.
    """
    structure = _check_container(data)
    source = BudgetedInput(data)
    with _open(data, source) as img:
        width, height = img.size
        _check_pixels(width, height, max_pixels)
        if img.format in ("JPEG", "MPO"):
            _check_scans(structure.scans if structure else 0, width, height)
            # Decode at 1/2, 1/4 or 1/8 scale, never below the target size.
            img.draft("RGB", _fit(img.size, max_side))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                if isinstance(img, ImageFile.ImageFile):  # always, once opened; narrows the type
                    img.decodermaxblock = DECODE_BLOCK_BYTES  # the budget is checked between blocks
                source.arm(cpu_seconds)
                img.load()
        except _BOMB:
            raise InvalidImage(_too_many_pixels(max_pixels), code="IMAGE_TOO_LARGE") from None
        except TooComplex:
            raise InvalidImage(
                f"the photo takes more than {cpu_seconds:g} s to open, far longer than a camera's photo does; "
                "save it again as an ordinary JPEG or PNG, or send another",
                code="IMAGE_TOO_COMPLEX",
            ) from None
        except _DECODE_ERRORS:
            # Not the decoder's own words (an exception name, a zlib code): a person reads this.
            raise InvalidImage(
                "the photo's data is cut short or damaged; save it again, or send another photo",
                code="IMAGE_TRUNCATED",
            ) from None
        yield img, (width, height)  # a reduced-scale decode is smaller than the file's picture


def _check_container(data: bytes) -> JpegWalk | None:
    """Walk the file's structure (`container_walk`); a flood is IMAGE_TOO_COMPLEX, in plain words."""
    try:
        return check_container(data)
    except Flood as flood:
        raise InvalidImage(f"{flood}; save it again without the extra data", code="IMAGE_TOO_COMPLEX") from None


def _orientation(img: Image.Image) -> int:
    """The EXIF (or XMP) orientation, 1 when there is none or it cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns of a corrupt block: the upload's problem, not ours
            value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a corrupt EXIF block is ignored, as viewers ignore it
        return 1
    return value if isinstance(value, int) else 1


def _open(data: bytes, source: io.BytesIO | None = None) -> Image.Image:
    """Open lazily (header only), accepting only the formats we support (`source`: `data` as a file)."""
    # Decoding must fail on truncated data; a process-wide switch must not silently change that.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(source or io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except _BOMB:
        raise InvalidImage(_too_many_pixels(Image.MAX_IMAGE_PIXELS or 0), code="IMAGE_TOO_LARGE") from None
    except UnidentifiedImageError:
        pass
    except _DECODE_ERRORS:
        # A recognised signature followed by a header that ends early.
        raise InvalidImage(
            "the start of the photo's data is cut short or damaged; save it again, or send another photo",
            code="IMAGE_TRUNCATED",
        ) from None
    raise _unsupported_or_not_an_image(data)


def _unsupported_or_not_an_image(data: bytes) -> InvalidImage:
    """Tell 'an image of a kind we refuse' from 'not an image at all', for a useful message.

    By signature only, as Pillow identifies a file (its plugins' 16-byte checks): a format we refuse
    is never parsed, so its parser's costs cannot be an upload's.
    """
    Image.init()
    prefix = data[:16]
    for kind in Image.ID:
        accept = Image.OPEN[kind][1]
        if accept is not None and accept(prefix):
            return InvalidImage(
                f"{kind} images are not supported; send JPEG, PNG, WEBP or GIF", code="UNSUPPORTED_IMAGE_TYPE"
            )
    return InvalidImage("the file is not a photo we can read; send a JPEG, PNG, WEBP or GIF", code="NOT_AN_IMAGE")


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("LA", "La", "PA", "RGBa") or "transparency" in img.info


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImage("the file holds a picture with no pixels; send a photo", code="NOT_AN_IMAGE")
    if width * height > max_pixels:
        raise InvalidImage(
            f"the photo is {width}x{height} pixels, {_megapixels(width * height)}; "
            + _too_many_pixels(max_pixels).split("; ", 1)[1],
            code="IMAGE_TOO_LARGE",
        )


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.0f} megapixels" if pixels >= 10_000_000 else f"{pixels / 1_000_000:.1f} megapixels"


def _too_many_pixels(max_pixels: int) -> str:
    return f"the photo has too many pixels; we take at most {_megapixels(max_pixels)}: send a smaller one"


def _check_scans(scans: int, width: int, height: int) -> None:
    """Refuse, before decoding, a JPEG with more scans than any encoder writes (each costs a full pass)."""
    limit = scan_limit(width, height)
    if scans > limit:
        raise InvalidImage(
            f"the JPEG has more than {limit} scans for its {width}x{height} pixels (cameras and editors "
            "write about 10); save it again as an ordinary JPEG",
            code="IMAGE_TOO_COMPLEX",
        )


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The size with the same aspect ratio whose longest side is at most max_side."""
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Flatten any mode a supported format can decode to (palette, alpha, CMYK, 16-bit) to RGB."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # Pillow clips 16-bit values on conversion; scale them to 8 bits instead.
        _, high = img.getextrema()
        if high > 255:  # type: ignore[operator]
            img = img.point(lambda value: value / 256)
        return img.convert("L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        # Transparent areas show as white, as in a browser on a white page.
        background = Image.new("RGB", img.size, _WHITE)
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img if img.mode == "RGB" else img.convert("RGB")


def _shrink(img: Image.Image, max_side: int) -> Image.Image:
    target = _fit(img.size, max_side)
    if target == img.size:
        return img
    # After a reduced-scale JPEG decode the last step is under 2x, where bicubic (antialiased by
    # Pillow) looks the same to a captioning model as LANCZOS at two thirds of the cost. For large
    # PNG/WEBP/GIF, reducing_gap makes an integer box reduction do most of the work first.
    return img.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)


def _encode_jpeg(img: Image.Image, quality: int) -> bytes:
    """Encode at `quality`, stepping down only if a very detailed picture overshoots the byte cap."""
    while True:
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=quality, optimize=True)
        if buffer.tell() <= MAX_OUTPUT_BYTES or quality <= _MIN_QUALITY:
            return buffer.getvalue()
        quality = max(_MIN_QUALITY, quality - 10)
