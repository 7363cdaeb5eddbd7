"""Benchmark: what a decode-work bomb costs, unguarded (as before) and through prepare_for_model.

    python bench/decode_bomb.py               # measure, print, and update docs/benchmarks.md
    python bench/decode_bomb.py --no-write --size 4000 --repeats 300

The bomb is a progressive JPEG whose last scan is repeated (tests/fixtures/images.py builds it).
Each measurement runs in a fresh process and reports its thread's CPU time, which is what holds a
Lambda worker, and wall time. "unguarded" is what prepare_for_model did before its decode bounds:
Pillow's reduced-scale `draft` and a full `load`. Inputs:

- the bomb of the report (7999x7999, last scan repeated 1000 times): refused by the scan count;
- the same picture with as many scans as its size allows (16 at about 64 MP): it passes the count
  and is decoded; this is the most decoding one upload can cost;
- an ordinary 24 MP progressive photo, to show a real picture is unaffected.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

MAX_PIXELS = 64_000_000


def worker(method: str, path: str) -> None:
    """Runs in its own process: one preparation, then its CPU and wall time and outcome as JSON."""
    from PIL import Image

    from reimagine.errors import InvalidImage
    from reimagine.imaging import prepare_for_model

    data = Path(path).read_bytes()
    wall, cpu = time.perf_counter(), time.thread_time()
    outcome = "decoded"
    if method == "unguarded":
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (1024, 1024))
            img.load()
    else:
        try:
            prepare_for_model(data, max_pixels=MAX_PIXELS)
        except InvalidImage as exc:
            outcome = exc.code
    print(json.dumps({"cpu": time.thread_time() - cpu, "wall": time.perf_counter() - wall, "outcome": outcome}))


def measure(method: str, path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--worker", method, str(path)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path[:2])},
    )
    return json.loads(result.stdout)


def make_inputs(folder: Path, size: int, repeats: int) -> dict[str, Path]:
    from reimagine.decode_work import scan_limit
    from tests.fixtures import images

    own_scans = len(images.jpeg_scans(images.progressive_jpeg((64, 64))))
    limit = scan_limit(size, size)
    made = {
        f"bomb {size}x{size}, last scan x{repeats}": images.scan_bomb_jpeg((size, size), repeats),
        f"bomb {size}x{size}, {limit} scans (the most allowed)": images.scan_bomb_jpeg((size, size), limit - own_scans),
    }
    from PIL import Image

    photo = folder / "photo.jpg"
    Image.open(io.BytesIO(images.photo_like(6000, 4000))).save(photo, "JPEG", quality=90, progressive=True)
    paths = {}
    for i, (label, data) in enumerate(made.items()):
        paths[label] = folder / f"input-{i}.jpg"
        paths[label].write_bytes(data)
    paths["24 MP progressive photo (6000x4000)"] = photo
    return paths


def machine() -> str:
    from PIL import Image

    model = platform.machine()
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else model
    except OSError:
        pass
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{os.cpu_count()} CPUs, {model}; Python {platform.python_version()}, Pillow {Image.__version__}; {now}"


def run(size: int, repeats: int, skip_unguarded: bool) -> str:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in make_inputs(Path(tmp), size, repeats).items():
            for method in ("unguarded", "prepare_for_model"):
                if method == "unguarded" and skip_unguarded:
                    continue
                m = measure(method, path)
                rows.append(
                    f"| {label}, {path.stat().st_size / 1e3:.0f} KB | {method} | {m['cpu']:.2f} | {m['wall']:.2f} "
                    f"| {m['outcome']} |"
                )
                print(rows[-1], flush=True)
    return "\n".join(
        [
            "## Decode-work bomb",
            "",
            "`python bench/decode_bomb.py`: a progressive JPEG whose last scan is repeated, decoded the way",
            'prepare_for_model did before its decode bounds ("unguarded": `draft` then `load`) and through',
            "prepare_for_model now (scans counted before decoding, at most 64 and at most 16 x 64 MP",
            "scan-pixels; a 3 s CPU budget on the decode).",
            "One run each, in a fresh process; CPU is the decoding thread's, wall includes a shared machine.",
            "",
            f"Machine: {machine()}.",
            "",
            "| input | method | CPU (s) | wall (s) | outcome |",
            "| --- | --- | ---: | ---: | --- |",
            *rows,
            "",
            "The bomb of the report is refused from its markers in milliseconds. A file with as many scans",
            "as its size allows passes the count and is decoded: that is the most decoding one upload can",
            "cost; the CPU budget is the backstop for anything the count does not foresee. On Lambda the wall",
            "time is about the CPU time divided by the share of a vCPU the memory size buys (about 0.58 at",
            "CaptionFunction's 1024 MB). A real photo decodes as before.",
            "",
        ]
    )


def write_section(section: str, path: Path) -> None:
    """Replace this benchmark's section in the shared document, leaving the others alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(r"^## Decode-work bomb\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=7999)
    parser.add_argument("--repeats", type=int, default=1000)
    parser.add_argument(
        "--skip-unguarded", action="store_true", help="only prepare_for_model (the unguarded bomb takes minutes)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    section = run(args.size, args.repeats, args.skip_unguarded)
    print(section)
    if not args.no_write:
        write_section(section, ROOT / "docs" / "benchmarks.md")
        print(f"updated {Path('docs') / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
