"""Bounds on the work one image's decode may cost, beyond its bytes and its pixels.

A progressive JPEG is decoded scan by scan, and every scan passes over the whole coefficient buffer
whatever `draft` scale is asked for. A file can repeat a scan hundreds of times for a few bytes
each, so a small upload under every byte and pixel limit can cost minutes of CPU (libjpeg-turbo's
"Two Issues with the JPEG Standard" describes it; its TurboJPEG API has a scan limit for it). Two
bounds stop it: the scans are counted from the markers before any pixel is decoded (a number, and
a number for the picture's size: the work is scans x pixels), and the decode itself runs under a
CPU-time budget, checked as each block of input is handed to the decoder.
"""

from __future__ import annotations

import io
import time

from reimagine.container_walk import walk_jpeg

# libjpeg's standard progressive script writes 10 scans for colour and 6 for greyscale, and scan
# optimisers (mozjpeg, jpegrescan) about as many: 64 leaves a wide margin for any real encoder.
MAX_JPEG_SCANS = 64
# Each scan is a pass over every coefficient, so the work is scans x pixels. This many pixel-scans
# is 16 passes at the 64 MP pixel limit, about 1 s of CPU on the bench machine on top of the decode
# itself; a smaller picture may have more scans, up to MAX_JPEG_SCANS.
MAX_SCAN_PIXELS = 16 * 64_000_000
# Never fewer than libjpeg's own script and a margin, whatever pixel limit a stack is given.
MIN_JPEG_SCANS = 12
# CPU seconds one decode may take: three times the slowest legitimate decode measured on the bench
# machine (a 64 MP progressive photo at draft scale, about 1 s of CPU).
DECODE_CPU_SECONDS = 3.0
# How much input the decoder gets between two budget checks: small enough that one block cannot
# hold much work (for a JPEG, the scans in it are bounded by the count made before decoding), big
# enough that the checks cost a 20 MiB upload nothing measurable (about 1300 of them; at 4 KiB the
# per-block overhead was a few percent of a large PNG's preparation).
DECODE_BLOCK_BYTES = 16384


class TooComplex(Exception):
    """Decoding would cost more than the budget allows."""


def scan_limit(width: int, height: int) -> int:
    """The most scans a JPEG of this size may have."""
    return max(MIN_JPEG_SCANS, min(MAX_JPEG_SCANS, MAX_SCAN_PIXELS // max(1, width * height)))


def count_jpeg_scans(data: bytes, *, stop_after: int = MAX_JPEG_SCANS) -> int:
    """The number of scans (SOS segments) of the first image in a JPEG, counted from its markers.

    Stops counting past `stop_after`; the walk (`container_walk.walk_jpeg`) follows segment lengths
    exactly, so scans inside metadata (an EXIF thumbnail) are not counted, and raises Flood on a
    container over its limits.
    """
    if data[:2] != b"\xff\xd8":
        return 0
    return walk_jpeg(data, stop_after_scans=stop_after).scans


class BudgetedInput(io.BytesIO):
    """The upload as a file the decoder reads from, refusing to go on once the CPU budget is spent.

    Pillow feeds its decoders from `read`, one block at a time; `arm` starts the clock (the header
    was already read cheaply by then). The clock is this thread's CPU time, so a busy machine does
    not make a good image fail, and a bad one cannot buy time by sleeping.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self._limit: float | None = None

    def arm(self, cpu_seconds: float) -> None:
        self._limit = time.thread_time() + cpu_seconds

    def read(self, size: int | None = -1, /) -> bytes:
        if self._limit is not None and time.thread_time() > self._limit:
            raise TooComplex
        return super().read(size)
