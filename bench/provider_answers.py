"""Benchmark: what a hostile provider's answer costs a caption call, against a real HTTP server.

    python bench/provider_answers.py               # measure, print, and update docs/benchmarks.md
    python bench/provider_answers.py --no-write --seconds-left 30

Each case runs in a fresh process (its peak RSS is its own) and asks the OpenAI-compatible captioner
for a caption from tests/fixtures/hostile_provider.py, on 127.0.0.1:

- an ordinary chat completion, the baseline;
- a 611 KB gzip body that inflates to 600 MiB (a valid answer padded with spaces);
- the same answer sent one byte every 5 s, body only, then status line and headers too, with
  `--seconds-left` (15) left in the invocation, as a function's Deadline would say;
- a 303 to another origin, which would answer a caption.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

from _fresh_process import run_worker, write_section

ROOT = Path(__file__).resolve().parent.parent
CASES = ("baseline", "gzip bomb", "trickled body", "trickled head", "redirect")


def worker(case: str, seconds_left: float) -> None:
    sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]
    from reimagine.errors import ProviderError
    from reimagine.model_call import Deadline
    from reimagine.providers import http
    from reimagine.providers import openai as oa
    from tests.fixtures.hostile_provider import Answer, HostileProvider, chat_json, gzip_bomb
    from tests.fixtures.provider_fakes import IMAGE

    elsewhere = HostileProvider(Answer(body=chat_json("Elsewhere's words."))).__enter__()
    answers = {
        "baseline": lambda: Answer(body=chat_json("A dog.")),
        "gzip bomb": lambda: Answer(
            body=gzip_bomb("A dog.", 600 * 1024 * 1024),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        ),
        "trickled body": lambda: Answer(body=chat_json("A dog."), trickle_seconds=5),
        "trickled head": lambda: Answer(body=chat_json("A dog."), trickle_seconds=5, trickle_head=True),
        "redirect": lambda: Answer(status=303, headers={"Location": elsewhere.url("/requests/x")}),
    }
    answer = answers[case]()
    size = len(answer.body)
    with HostileProvider(answer) as provider:
        captioner = oa.OpenAiCaptioner(http.HttpClient(token=lambda: "k"), base_url=provider.url(), model="m")
        started = time.monotonic()
        try:
            outcome = f"caption {captioner.caption(IMAGE, Deadline.after(seconds_left))!r}"
        except ProviderError as exc:
            outcome = exc.code
        wall = time.monotonic() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"outcome": outcome, "wall": wall, "peak_mib": peak_mib, "bytes": size, "elsewhere": len(elsewhere.calls)}
        )
    )


def run(seconds_left: float) -> str:
    rows = []
    for case in CASES:
        result = run_worker(__file__, "--worker", case, str(seconds_left))
        rows.append(
            f"| {case} | {result['bytes']:,} | {result['outcome']} | {result['wall']:.1f} | {result['peak_mib']:.0f} |"
            f" {result['elsewhere']} |"
        )
    return "\n".join(
        [
            "## Hostile provider answers",
            "",
            f"`python bench/provider_answers.py` ({platform.python_version()}, {platform.machine()}): one caption",
            f"call to a server on 127.0.0.1, {seconds_left:g} s left in the invocation. Bodies are capped while they",
            "stream (1 MiB for JSON, counted as received and as decoded), every attempt has a total deadline",
            "(the time left less 1 s), and no redirect is followed. Peak RSS is the whole worker process",
            "(Python, requests, Pillow, the server), so the baseline is its floor.",
            "",
            "| answer | bytes sent | outcome | s | peak RSS MiB | calls elsewhere |",
            "| --- | ---: | --- | ---: | ---: | ---: |",
            *rows,
            "",
            "Before these bounds the gzip bomb peaked at 1.3 GB, the trickle held the call until the function's",
            "Timeout, and the 303 was followed to the other origin.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds-left", type=float, default=15.0)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], float(args.worker[1]))
        return
    section = run(args.seconds_left)
    print(section)
    if not args.no_write:
        write_section(section, ROOT / "docs" / "benchmarks.md")
        print(f"updated {Path('docs') / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
