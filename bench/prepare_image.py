"""Benchmark: preparing a large upload for the captioning model, naive way vs prepare_for_model.

    python bench/prepare_image.py            # measure, print, and update docs/benchmarks.md
    python bench/prepare_image.py --runs 3 --no-write

Every measurement runs in a fresh subprocess, so its peak resident memory (VmHWM, which sees
Pillow's C allocations that tracemalloc cannot) belongs to that one operation. Methods alternate
run by run so drift in the machine affects both alike. Memory is reported above a baseline process
that imports the same modules and reads the same file but does nothing with it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))

from PIL import Image  # noqa: E402

MAX_SIDE = 1024
QUALITY = 85
MAX_PIXELS = 64_000_000
METHODS = ("naive", "prepare_for_model")


# --- the two ways --------------------------------------------------------------------------------


def naive(data: bytes) -> bytes:
    """What most code does: decode everything, LANCZOS down to 1024, re-encode."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    scale = MAX_SIDE / max(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=QUALITY)
    return out.getvalue()


def prepared(data: bytes) -> bytes:
    from reimagine.imaging import prepare_for_model

    return prepare_for_model(data, max_pixels=MAX_PIXELS, max_side=MAX_SIDE, jpeg_quality=QUALITY).data


def worker(method: str, path: str) -> None:
    """Runs in its own process: one operation, then its time and peak memory as JSON."""
    import reimagine.imaging  # noqa: F401 - same imports in every process, baseline included

    data = Path(path).read_bytes()
    start = time.perf_counter()
    out = b"" if method == "baseline" else (naive if method == "naive" else prepared)(data)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_kib": peak_rss_kib(), "out_bytes": len(out)}))


def peak_rss_kib() -> int:
    """This process's peak resident set. VmHWM belongs to the address space created by exec; on
    Linux ru_maxrss also carries the parent's peak across fork+exec, so it is only the fallback."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1))  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(method: str, path: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--worker", method, str(path)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "functions")},
    )
    return json.loads(result.stdout)


# --- inputs --------------------------------------------------------------------------------------


def photo_like(width: int, height: int) -> Image.Image:
    """Smooth colour gradients plus sensor-like noise: compresses like a photograph."""
    horizontal = Image.linear_gradient("L").rotate(90).resize((width, height))
    vertical = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 40)
    return Image.merge(
        "RGB",
        (
            Image.blend(horizontal, noise, 0.25),
            Image.blend(vertical, noise, 0.2),
            Image.blend(Image.blend(horizontal, vertical, 0.5), noise, 0.3),
        ),
    )


def make_inputs(folder: Path) -> dict[str, Path]:
    jpeg = folder / "photo-6000x4000.jpg"
    photo_like(6000, 4000).save(jpeg, "JPEG", quality=90)
    png = folder / "screenshot-4000x3000.png"
    photo_like(4000, 3000).save(png, "PNG", compress_level=6)
    return {"24 MP JPEG (6000x4000)": jpeg, "12 MP PNG (4000x3000)": png}


# --- report --------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = platform.processor() or platform.machine()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^(model name|Hardware|cpu model)\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        if found:
            model = found.group(2).strip()
    except OSError:
        pass
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "pillow": Image.__version__,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
    }


def run(runs: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        inputs = make_inputs(Path(tmp))
        rows = []
        for label, path in inputs.items():
            samples: dict[str, list[dict[str, float]]] = {m: [] for m in (*METHODS, "baseline")}
            for i in range(runs):
                order = METHODS if i % 2 == 0 else METHODS[::-1]  # alternate who goes first
                for method in (*order, "baseline"):
                    samples[method].append(measure(method, path))
            base = statistics.median(s["peak_kib"] for s in samples["baseline"])
            stats = {}
            for method in METHODS:
                peak = statistics.median(s["peak_kib"] for s in samples[method])
                stats[method] = {
                    "ms": statistics.median(s["seconds"] for s in samples[method]) * 1000,
                    "peak_mib": peak / 1024,
                    "net_mib": max(peak - base, 1) / 1024,
                    "out_kib": samples[method][0]["out_bytes"] / 1024,
                }
            rows.append((label, path.stat().st_size, base / 1024, stats))
    return report(rows, runs)


def report(rows: list, runs: int) -> str:
    m = machine()
    lines = [
        "## Image preparation",
        "",
        "`python bench/prepare_image.py`: the naive way (full decode, LANCZOS to 1024 px, JPEG q85) against",
        "`reimagine.imaging.prepare_for_model` (reduced-scale JPEG decode via `draft`, then bicubic with a",
        "reducing gap, JPEG q85 optimized). Each figure is the median of "
        f"{runs} runs, each in a fresh process, methods alternating.",
        "Memory is the process's peak resident set (VmHWM) above a baseline process that imports",
        "the same modules and reads the same file.",
        "",
        f"Machine: {m['cpus']} CPUs, {m['cpu']}; Python {m['python']}, Pillow {m['pillow']}; {m['date']}.",
        "",
        "| input | method | time (ms) | peak above baseline (MiB) | peak RSS (MiB) | output (KiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    summary = []
    for label, size, base_mib, stats in rows:
        for method in METHODS:
            s = stats[method]
            lines.append(
                f"| {label}, {size / 1e6:.1f} MB | {method} | {s['ms']:.0f} | {s['net_mib']:.1f} "
                f"| {s['peak_mib']:.1f} | {s['out_kib']:.0f} |"
            )
        n, p = stats["naive"], stats["prepare_for_model"]
        summary.append(
            f"- {label}: {n['ms'] / p['ms']:.1f}x faster, {n['net_mib'] / p['net_mib']:.1f}x less memory "
            f"above baseline ({n['peak_mib'] / p['peak_mib']:.1f}x less peak RSS; baseline "
            f"{base_mib:.1f} MiB), {p['out_kib']:.0f} KiB sent to the model."
        )
    lines += [
        "",
        *summary,
        "",
        "Absolute times vary widely between runs on a shared machine (other work competes for the CPUs),",
        "so compare the two methods within one run; peak memory is stable. The JPEG floor is entropy",
        "decoding: DCT scaling skips most of the inverse transform and every full-size buffer, but each",
        "coded byte is still read.",
        "",
    ]
    return "\n".join(lines)


def write_section(section: str, path: Path) -> None:
    """Replace this benchmark's section in the shared document, leaving the others alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(r"^## Image preparation\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    section = run(args.runs)
    print(section)
    if not args.no_write:
        write_section(section, ROOT / "docs" / "benchmarks.md")
        print(f"updated {Path('docs') / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
