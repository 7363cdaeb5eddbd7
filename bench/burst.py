"""A burst of uploads through the local stack against a provider with fixed latency.

    python bench/burst.py                                   # 100 uploads, 1 s a caption, 4 s a picture
    python bench/burst.py --uploads 100 --generate-concurrency 10 --caption-seconds 1 --picture-seconds 4
    python bench/burst.py --in-process --uploads 20          # today's in-process invoker, for comparison
    python bench/burst.py --json

The provider is Bedrock (Provider=bedrock, the real provider code) pointed at a stand-in: an HTTP
server in this process that answers bedrock-runtime's Converse and InvokeModel in the shapes the
API reference gives, after a fixed delay, and counts how many calls of each kind overlap. It is
reached through configuration only (the stack's `aws_endpoints`: AWS_ENDPOINT_URL_BEDROCK_RUNTIME
in the functions' environment), so the functions run unpatched in their execution environments (--in-process: in
this process, as the local stack does by default).

All uploads are created and sent at once; the run ends when every request is final or --timeout
passes. It reports makespan (first create to last final), throughput, p50/p95 latency per request,
peak concurrent provider calls per kind, final states, and duplicates (result objects against
COMPLETED requests, emails per address), and the target: makespan within ideal / 0.8, where ideal is
uploads x picture seconds / GenerateConcurrency plus one caption and one picture.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "infra")]

import requests  # noqa: E402
from PIL import Image  # noqa: E402

FINAL = ("COMPLETED", "FAILED")
STANDIN_LABEL = "stand-in caption with fixed latency, not AI"


class StandIn:
    """bedrock-runtime's Converse and InvokeModel, answered after a fixed delay; counts overlaps."""

    def __init__(self, caption_seconds: float, picture_seconds: float) -> None:
        self.delays = {"converse": caption_seconds, "invoke": picture_seconds}
        self._lock = threading.Lock()
        self.running: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        png = io.BytesIO()
        Image.new("RGB", (64, 64), (40, 90, 160)).save(png, "PNG")
        self.picture = base64.b64encode(png.getvalue()).decode()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, kind: str) -> dict[str, Any]:
        with self._lock:
            self.calls[kind] += 1
            self.running[kind] += 1
            self.peak[kind] = max(self.peak[kind], self.running[kind])
        try:
            time.sleep(self.delays[kind])
        finally:
            with self._lock:
                self.running[kind] -= 1
        if kind == "converse":
            return {
                "output": {"message": {"role": "assistant", "content": [{"text": f"A photo ({STANDIN_LABEL})."}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                "metrics": {"latencyMs": int(self.delays[kind] * 1000)},
            }
        return {"images": [self.picture], "error": None}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                kind = self.path.rsplit("/", 1)[-1]  # /model/{modelId}/converse or /invoke
                if kind not in standin.delays:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(standin.answer(kind)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def photo(index: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (index * 37 % 256, index * 91 % 256, 120)).save(out, "JPEG")
    return out.getvalue()


def submit(stack: Any, index: int) -> tuple[str, str, float]:
    data = photo(index)
    address = f"burst-{index}@example.com"
    started = time.monotonic()
    created = stack.api_invoke(
        "POST", "/requests", {"email": address, "content_type": "image/jpeg", "size": len(data)}
    ).json()
    form = created["upload"]
    sent = requests.post(form["url"], data=form["fields"], files={"file": ("p.jpg", data)}, timeout=60)
    sent.raise_for_status()
    return created["id"], address, started


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))] if ordered else 0.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    from reimagine_local.outbox import list_outbox
    from reimagine_local.stack import EmbeddedStack

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    standin = StandIn(args.caption_seconds, args.picture_seconds)
    outbox = Path(tempfile.mkdtemp(prefix="reimagine-burst-"))
    concurrency = str(args.generate_concurrency)
    stack = EmbeddedStack(
        ROOT / "template.yaml",
        stack_name=f"burst-{uuid.uuid4().hex[:6]}",
        parameters={"Provider": "bedrock", "GenerateConcurrency": concurrency, "CaptionConcurrency": concurrency},
        env_overrides={"LOG_LEVEL": "WARNING"},  # overrides replace declared variables only
        aws_endpoints={"bedrock-runtime": standin.url},
        outbox_dir=outbox,
        environments=not args.in_process,
    )
    with redirect_stdout(io.StringIO()), stack.start():
        stack.start_background_delivery()
        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=20) as pool:
            submitted = list(pool.map(lambda i: submit(stack, i), range(args.uploads)))
        table = stack.app.tables["RequestsTable"].name  # type: ignore[union-attr]
        db = stack.client("dynamodb")
        finished: dict[str, float] = {}
        statuses: dict[str, str] = {}
        deadline = began + args.timeout
        while len(finished) < len(submitted) and time.monotonic() < deadline:
            for request_id, _, _ in submitted:
                if request_id in finished:
                    continue
                item = db.get_item(TableName=table, Key={"id": {"S": request_id}}).get("Item", {})
                status = item.get("status", {}).get("S", "?")
                statuses[request_id] = status
                if status in FINAL:
                    finished[request_id] = time.monotonic()
            time.sleep(0.5)
        makespan = max(finished.values(), default=time.monotonic()) - began
        stack.drain(timeout=60)  # the last emails
        bucket = stack.app.functions["GenerateFunction"].environment["RESULTS_BUCKET"]  # type: ignore[union-attr]
        results = stack.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0)
        mails = Counter(m.to for m in list_outbox(outbox))
    latencies = [finished[rid] - started for rid, _, started in submitted if rid in finished]
    states = Counter(statuses[rid] for rid, _, _ in submitted)
    ideal = args.uploads * args.picture_seconds / args.generate_concurrency
    bound = ideal / 0.8 + args.caption_seconds + args.picture_seconds
    return {
        "design": "in-process invoker" if args.in_process else "execution environments",
        "uploads": args.uploads,
        "generate_concurrency": args.generate_concurrency,
        "caption_seconds": args.caption_seconds,
        "picture_seconds": args.picture_seconds,
        "makespan_s": round(makespan, 1),
        "throughput_per_s": round(len(finished) / makespan, 2) if makespan else 0.0,
        "p50_s": round(percentile(latencies, 50), 1),
        "p95_s": round(percentile(latencies, 95), 1),
        "peak_caption_calls": standin.peak["converse"],
        "peak_picture_calls": standin.peak["invoke"],
        "provider_calls": dict(standin.calls),
        "final_states": dict(states),
        "not_final": len(submitted) - len(finished),
        "result_objects": results,
        "emails_sent": sum(mails.values()),
        "addresses_emailed_twice": sum(1 for n in mails.values() if n > 1),
        "target_s": round(bound, 1),
        "meets_target": makespan <= bound and states.get("COMPLETED", 0) == args.uploads,
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        "at": datetime.now(UTC).isoformat(timespec="minutes"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument(
        "--generate-concurrency", type=int, default=10, help="GenerateConcurrency and CaptionConcurrency"
    )
    parser.add_argument("--caption-seconds", type=float, default=1.0)
    parser.add_argument("--picture-seconds", type=float, default=4.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--in-process", action="store_true", help="today's design: functions in this process")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not (1 <= args.uploads <= 1000 and 1 <= args.generate_concurrency <= 100):
        parser.error("--uploads 1-1000, --generate-concurrency 1-100")
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, value in report.items():
            print(f"{name:>24}: {value}")
    ok = report["meets_target"] and report["peak_picture_calls"] <= args.generate_concurrency
    ok = (
        ok
        and report["addresses_emailed_twice"] == 0
        and report["result_objects"] == report["final_states"].get("COMPLETED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
