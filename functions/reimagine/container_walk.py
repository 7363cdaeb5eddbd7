"""Walk an image file's container before Pillow opens it, and refuse floods of structure.

Pillow parses everything around the pixels (JPEG segments, PNG chunks, GIF extension blocks) in
Python, one piece at a time, and keeps what it reads: a 20 MiB JPEG of 4-byte comment segments
costs about 24 s of CPU and 450 MB inside `Image.open`, before any decode budget can start. The walk
here reads the same structure with bounded work (one step per segment, chunk or sub-block, and it
stops at the first limit passed), keeps no per-piece objects, and measures:

- pieces: segments, chunks or blocks Pillow's parser would visit one by one;
- stray bytes: fill and junk between pieces, which Pillow reads one byte at a time;
- metadata: bytes of everything that is not pixel data (comments, EXIF, XMP, ICC, unknown chunks),
  compressed PNG text and profiles counted at their inflated size.

The pixel data itself is left to the decoder, which runs under its CPU budget (`decode_work`).
Limits are far above what cameras, phones and editors write (see each); a file over one is refused
as too complex, whatever its pixels.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

MiB = 1024 * 1024

# Segments in one JPEG (SOI to EOI). A camera writes about 15 (APP0/1/2, DQT, SOF, DHT, SOS); a
# progressive file adds a DHT and an SOS per scan (at most 64 scans: 130); an ICC profile may be split
# over at most 255 APP2 segments, extended XMP (a phone's depth map) over a hundred APP1s. Pillow
# spends about 1.5 us and 90 bytes on each: 4096 of them cost milliseconds.
MAX_JPEG_SEGMENTS = 4096
# Chunks in one PNG up to IEND. libpng writes the image data in 8 KiB IDAT chunks (2560 for 20 MiB),
# some encoders in smaller ones, and an animated PNG has two chunks a frame. Pillow spends about 5 us
# on each: 32768 cost about 0.15 s.
MAX_PNG_CHUNKS = 32768
# Extension sub-blocks before a GIF's first picture: a graphic control block, the loop count, XMP
# (about one sub-block per 80 bytes of text) and an ICC profile in 255-byte pieces: 65536 is 16 MiB of
# 255-byte pieces. Pillow spends about 1 us on each.
MAX_GIF_SUB_BLOCKS = 65536
# RIFF chunks in one WEBP: a few, plus one ANMF per frame of an animation. libwebp's demuxer keeps an
# allocation for each (2.5M tiny chunks in 20 MiB: 120 MB); 65536 frames is far beyond any animation.
MAX_WEBP_CHUNKS = 65536
# Bytes between JPEG segments or GIF blocks that belong to nothing (0xFF fill, junk): encoders write
# none or a few; Pillow reads them one at a time, about 0.3 us each.
MAX_STRAY_BYTES = 64 * 1024
# Everything that is not pixel data: the largest real metadata is a phone's portrait photo (depth map
# and original picture in extended XMP, a few MiB) or a print ICC profile (a few MiB). Pillow keeps it
# in memory, in a copy or two.
MAX_METADATA_BYTES = 16 * MiB
# One compressed PNG text or profile chunk may inflate to this (Pillow's own MAX_TEXT_CHUNK, which it
# enforces with an error that would otherwise read as a corrupt file).
MAX_INFLATED_CHUNK = 1 * MiB


class Flood(Exception):
    """The container holds more structure or metadata than any real picture; `str()` says what, plainly."""


@dataclass
class JpegWalk:
    segments: int = 0
    scans: int = 0
    stray_bytes: int = 0
    metadata_bytes: int = 0


# After 0xFF in entropy-coded data, 0x00 is a stuffed byte, 0xD0-0xD7 a restart marker, 0xFF fill;
# anything else is the marker that ends the scan.
_MARKER_AFTER_SCAN = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")
# Where libjpeg and Pillow resume after bytes that are not a marker: they skip them.
_NEXT_MARKER = re.compile(rb"\xff(?=[^\x00\xff])")
_FILL = re.compile(rb"\xff+")
_EOI, _SOS = 0xD9, 0xDA
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn carry no length
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_PIXELS = {b"IDAT", b"fdAT"}


def check_container(data: bytes) -> JpegWalk | None:
    """Raise Flood if `data` is a JPEG, PNG, GIF or WEBP whose structure is over a limit above.

    A JPEG's walk is returned (its scans are counted on the way); None for the other formats.
    """
    if data[:2] == b"\xff\xd8":
        return walk_jpeg(data)
    if data[:8] == _PNG_SIGNATURE:
        _walk_png(data)
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        _walk_gif(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        _walk_webp(data)
    return None


def walk_jpeg(data: bytes, *, stop_after_scans: int | None = None) -> JpegWalk:
    """Walk the first picture of a JPEG (SOI to EOI) by its markers; raise Flood past a limit.

    Segment lengths are followed exactly, so markers inside metadata (an EXIF thumbnail is a JPEG of
    its own) are not counted; stray bytes between segments are skipped as libjpeg skips them, so they
    cannot hide what follows. Stops counting scans past `stop_after_scans`.
    """
    walk = JpegWalk()
    pos, size = 2, len(data)
    while pos + 1 < size:
        if stop_after_scans is not None and walk.scans > stop_after_scans:
            break
        if data[pos] != 0xFF:
            found = _NEXT_MARKER.search(data, pos)
            end = found.start() if found else size
            _add_stray(walk, end - pos)
            if found is None:
                break
            pos = end
            continue
        run = _FILL.match(data, pos)
        assert run is not None  # data[pos] is 0xFF
        if run.end() - pos > 1:  # fill bytes before the marker
            _add_stray(walk, run.end() - pos - 1)
            pos = run.end() - 1
            continue
        marker = data[pos + 1]
        if marker == 0x00:  # an escaped 0xFF outside a scan: junk
            _add_stray(walk, 2)
            pos += 2
            continue
        if marker == _EOI:
            break
        walk.segments += 1
        if walk.segments > MAX_JPEG_SEGMENTS:
            raise Flood(f"the JPEG has more than {MAX_JPEG_SEGMENTS} segments (cameras write about 20)")
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > size:
            break
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker >= 0xE0:  # APP0-APP15 and COM: metadata
            _add_metadata(walk, end - pos)
        if marker == _SOS:
            walk.scans += 1
            found = _MARKER_AFTER_SCAN.search(data, end)
            if found is None:
                break
            end = found.start()
        pos = end
    return walk


def _add_stray(walk: JpegWalk, count: int) -> None:
    walk.stray_bytes += count
    if walk.stray_bytes > MAX_STRAY_BYTES:
        raise Flood(f"the JPEG has more than {MAX_STRAY_BYTES} stray bytes between its segments")


def _add_metadata(walk: JpegWalk, count: int) -> None:
    walk.metadata_bytes += count
    if walk.metadata_bytes > MAX_METADATA_BYTES:
        raise Flood(f"the JPEG carries more than {MAX_METADATA_BYTES // MiB} MiB of metadata")


def _walk_png(data: bytes) -> None:
    chunks, metadata, pos, size = 0, 0, len(_PNG_SIGNATURE), len(data)
    while pos + 8 <= size:
        length, kind = struct.unpack_from(">I4s", data, pos)
        body_start = pos + 8
        pos = body_start + length + 4  # body and CRC
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise Flood(f"the PNG has more than {MAX_PNG_CHUNKS} chunks")
        if kind == b"IEND":
            break
        if kind in _PNG_PIXELS:
            continue
        metadata += length + 12
        if kind in (b"zTXt", b"iCCP", b"iTXt"):
            metadata += _inflated_size(kind, data, body_start, min(body_start + length, size))
        if metadata > MAX_METADATA_BYTES:
            raise Flood(f"the PNG carries more than {MAX_METADATA_BYTES // MiB} MiB of metadata")


def _inflated_size(kind: bytes, data: bytes, start: int, end: int) -> int:
    """What a compressed text or profile chunk (body at data[start:end]) inflates to; Flood past
    MAX_INFLATED_CHUNK. Read in place: the chunk is not copied."""
    pos = data.find(b"\x00", start, end) + 1  # after the keyword or profile name
    if pos == 0 or pos >= end:
        return 0
    if kind == b"iTXt":
        if data[pos] == 0:  # not compressed
            return 0
        language_end = data.find(b"\x00", pos + 2, end)  # after the flag and the method
        pos = data.find(b"\x00", language_end + 1, end) + 1 if language_end >= 0 else 0  # translated keyword
        if pos == 0:
            return 0
    else:
        pos += 1  # the compression method
    inflater = zlib.decompressobj()
    try:
        inflated = len(inflater.decompress(memoryview(data)[pos:end], MAX_INFLATED_CHUNK))
    except zlib.error:
        return 0  # Pillow reports it as corrupt, which it is
    if inflater.unconsumed_tail:
        raise Flood(f"the PNG's {kind.decode()} chunk inflates to more than {MAX_INFLATED_CHUNK // MiB} MiB")
    return inflated


def _walk_gif(data: bytes) -> None:
    """Walk the blocks before the first picture (its pixel data is the decoder's, in C)."""
    size = len(data)
    if size < 13:
        return
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # header, screen descriptor, colour table
    sub_blocks = metadata = stray = 0
    while pos < size:
        tag = data[pos]
        if tag in (0x2C, 0x3B):  # the first picture, or the end
            return
        if tag != 0x21:
            stray += 1
            if stray > MAX_STRAY_BYTES:
                raise Flood(f"the GIF has more than {MAX_STRAY_BYTES} stray bytes between its blocks")
            pos += 1
            continue
        pos += 2  # introducer and label
        while pos < size:
            length = data[pos]
            pos += 1 + length
            sub_blocks += 1
            metadata += 1 + length
            if sub_blocks > MAX_GIF_SUB_BLOCKS:
                raise Flood(f"the GIF has more than {MAX_GIF_SUB_BLOCKS} extension blocks before its picture")
            if metadata > MAX_METADATA_BYTES:
                raise Flood(f"the GIF carries more than {MAX_METADATA_BYTES // MiB} MiB of metadata")
            if length == 0:
                break


def _walk_webp(data: bytes) -> None:
    chunks, metadata, pos = 0, 0, 12
    end = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    while pos + 8 <= end:
        kind = data[pos : pos + 4]
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        pos += 8 + length + (length & 1)
        chunks += 1
        if chunks > MAX_WEBP_CHUNKS:
            raise Flood(f"the WEBP has more than {MAX_WEBP_CHUNKS} chunks")
        if kind not in (b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF"):
            metadata += 8 + length
            if metadata > MAX_METADATA_BYTES:
                raise Flood(f"the WEBP carries more than {MAX_METADATA_BYTES // MiB} MiB of metadata")
