"""A burst of uploads through the local stack against a provider with fixed latency.

    python bench/burst.py                                   # 100 uploads, 1 s a caption, 4 s a picture
    python bench/burst.py --uploads 100 --generate-concurrency 10 --caption-seconds 1 --picture-seconds 4
    python bench/burst.py --in-process --uploads 20          # today's in-process invoker, for comparison
    python bench/burst.py --json
    python bench/burst.py --compare a0f9b8a                 # REV's own bench/burst.py on REV's tree, then this one

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
uploads x picture seconds / GenerateConcurrency plus one caption and one picture. Where the time goes:
picture-slot use (picture seconds over GenerateConcurrency x the span from the first picture call to
the last), when the last caption and the first and last picture calls were answered, and the CPU the
run took (this process and its execution environments) against the machine's.

--compare REV extracts REV's tree (`git archive REV | tar -x`) into a temporary directory, runs REV's own
bench/burst.py from there with the same arguments and the same Python, then this tree's, and prints both
side by side: two designs measured in one run, on the same machine under the same load.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import shutil
import subprocess
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
        self.spans: dict[str, list[tuple[float, float]]] = {"converse": [], "invoke": []}  # monotonic start, end
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
        started = time.monotonic()
        try:
            time.sleep(self.delays[kind])
        finally:
            with self._lock:
                self.running[kind] -= 1
                self.spans[kind].append((started, time.monotonic()))
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


def _cpu_seconds() -> tuple[float, float]:
    """CPU used so far by this process (moto's server, the delivery, this bench) and by its live
    descendants (the execution environments)."""
    own = os.times()
    total = 0.0
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    tick = os.sysconf("SC_CLK_TCK")
    pending = list(children.get(os.getpid(), []))
    while pending:
        pid = pending.pop()
        fields = stats[pid]
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        pending.extend(children.get(pid, []))
    return own.user + own.system, total


def _machine_busy_seconds() -> float:
    """CPU-seconds the whole machine spent busy (all processes, others' too), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _where_the_time_goes(standin: StandIn, began: float, concurrency: int) -> dict[str, Any]:
    captions, pictures = standin.spans["converse"], standin.spans["invoke"]
    if not pictures:
        return {}
    first, last = min(start for start, _ in pictures), max(end for _, end in pictures)
    busy = sum(end - start for start, end in pictures)
    return {
        "first_caption_answered_s": round(min(end for _, end in captions) - began, 1) if captions else None,
        "last_caption_answered_s": round(max(end for _, end in captions) - began, 1) if captions else None,
        "first_picture_call_s": round(first - began, 1),
        "last_picture_answered_s": round(last - began, 1),
        # 1.0: every slot busy with a picture from the first call to the last; below, slots waited for work.
        "picture_slot_use": round(busy / (concurrency * (last - first)), 2) if last > first else 0.0,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from reimagine_emulator.outbox import list_outbox
    from reimagine_emulator.stack import EmbeddedStack

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    standin = StandIn(args.caption_seconds, args.picture_seconds)
    outbox = Path(tempfile.mkdtemp(prefix="reimagine-burst-"))
    concurrency = str(args.generate_concurrency)
    stack = EmbeddedStack(
        ROOT / "template.yaml",
        stack_name=f"burst-{uuid.uuid4().hex[:6]}",
        parameters={
            "Provider": "bedrock",
            "GenerateConcurrency": concurrency,
            "CaptionConcurrency": concurrency,
            # The burst measures the pipeline: the local HttpApi applies the stage's throttling (10/s).
            "ThrottlingBurstLimit": "5000",
            "ThrottlingRateLimit": "10000",
        },
        env_overrides={"LOG_LEVEL": "WARNING"},  # overrides replace declared variables only
        aws_endpoints={"bedrock-runtime": standin.url},
        outbox_dir=outbox,
        environments=not args.in_process,
    )
    load_before = os.getloadavg()[0]
    machine_before = _machine_busy_seconds()
    with redirect_stdout(io.StringIO()), stack.start():
        stack.start_background_delivery()
        began = time.monotonic()
        cpu_before = _cpu_seconds()
        with ThreadPoolExecutor(max_workers=20) as pool:
            submitted = list(pool.map(lambda i: submit(stack, i), range(args.uploads)))
        table = stack.app.tables["RequestsTable"].name  # type: ignore[union-attr]
        db = stack.client("dynamodb")
        finished: dict[str, float] = {}
        statuses: dict[str, str] = {}
        deadline = began + args.timeout
        while len(finished) < len(submitted) and time.monotonic() < deadline:
            # BatchGetItem, 100 keys a call: reading each request on its own every 0.5 s took a good
            # share of a core from the stack being measured.
            waiting = [request_id for request_id, _, _ in submitted if request_id not in finished]
            for start in range(0, len(waiting), 100):
                keys = [{"id": {"S": request_id}} for request_id in waiting[start : start + 100]]
                found = db.batch_get_item(
                    RequestItems={
                        table: {
                            "Keys": keys,
                            "ProjectionExpression": "id, #s",
                            "ExpressionAttributeNames": {"#s": "status"},
                        }
                    }
                )
                for item in found["Responses"].get(table, []):
                    status = item.get("status", {}).get("S", "?")
                    statuses[item["id"]["S"]] = status
                    if status in FINAL:
                        finished[item["id"]["S"]] = time.monotonic()
            time.sleep(0.5)
        makespan = max(finished.values(), default=time.monotonic()) - began
        cpu_after = _cpu_seconds()
        cpu = [after - before for after, before in zip(cpu_after, cpu_before, strict=True)]
        machine = _machine_busy_seconds() - machine_before
        stack.drain(timeout=60)  # the last emails
        bucket = stack.app.functions["GenerateFunction"].environment["RESULTS_BUCKET"]  # type: ignore[union-attr]
        results = stack.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0)
        mails = Counter(m.to for m in list_outbox(outbox))
    latencies = [finished[rid] - started for rid, _, started in submitted if rid in finished]
    states = Counter(statuses.get(rid, "?") for rid, _, _ in submitted)
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
        **_where_the_time_goes(standin, began, args.generate_concurrency),
        "cpu_s_stack_process": round(cpu[0], 1),  # moto's server, the delivery, this bench
        "cpu_s_environments": round(cpu[1], 1),
        "cpu_s_machine": round(machine, 1),
        "cpu_available_s": round(makespan * (os.cpu_count() or 1), 1),
        "load_average_before": round(load_before, 2),
        "target_s": round(bound, 1),
        "meets_target": makespan <= bound and states.get("COMPLETED", 0) == args.uploads,
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        "at": datetime.now(UTC).isoformat(timespec="minutes"),
    }


def _same_arguments(args: argparse.Namespace) -> list[str]:
    """The options both trees' bench/burst.py take, as given to this one."""
    argv = [
        f"--uploads={args.uploads}",
        f"--generate-concurrency={args.generate_concurrency}",
        f"--caption-seconds={args.caption_seconds}",
        f"--picture-seconds={args.picture_seconds}",
        f"--timeout={args.timeout}",
    ]
    return [*argv, "--in-process"] if args.in_process else argv


def run_revision(revision: str, args: argparse.Namespace) -> dict[str, Any]:
    """REV's own bench/burst.py on REV's tree (extracted with git archive), with this Python."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", f"{revision}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    tree = Path(tempfile.mkdtemp(prefix=f"reimagine-{commit}-"))
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        if not (tree / "bench" / "burst.py").exists():
            raise SystemExit(f"{revision} ({commit}) has no bench/burst.py to run")
        # Its own bench puts its own functions/ and infra/ first on sys.path (and the environments'
        # PYTHONPATH is its template's CodeUri), so REV's code runs, not this tree's.
        done = subprocess.run(
            [sys.executable, "bench/burst.py", *_same_arguments(args), "--json"],
            cwd=tree,
            capture_output=True,
            text=True,
            check=False,
        )
        out = done.stdout
        if "\n{" not in "\n" + out:
            raise SystemExit(
                f"{revision}'s bench/burst.py printed no report (exit {done.returncode}):\n{done.stderr[-2000:]}"
            )
        report: dict[str, Any] = json.loads(out[("\n" + out).index("\n{") :])
        report["design"] = f"{commit} ({report['design']})"
        return report
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def _head() -> str:
    found = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    return found.stdout.strip() or "this tree"


def side_by_side(reports: list[dict[str, Any]]) -> str:
    names = list(dict.fromkeys(name for report in reports for name in report))
    width = max(len(str(report.get("design", ""))) for report in reports) + 2
    lines = []
    for name in names:
        cells = "".join(f"{report.get(name, '-')!s:<{max(width, 14)}}" for report in reports)
        lines.append(f"{name:>26}: {cells}")
    return "\n".join(lines)


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
    parser.add_argument("--compare", metavar="REV", help="first run REV's own bench/burst.py on REV's tree")
    args = parser.parse_args(argv)
    if not (1 <= args.uploads <= 1000 and 1 <= args.generate_concurrency <= 100):
        parser.error("--uploads 1-1000, --generate-concurrency 1-100")
    before = run_revision(args.compare, args) if args.compare else None
    report = run(args)
    report["design"] = f"{_head()} ({report['design']})"
    if args.json:
        print(json.dumps([before, report] if before else report, indent=2))
    elif before:
        print(side_by_side([before, report]))
    else:
        for name, value in report.items():
            print(f"{name:>26}: {value}")
    ok = report["meets_target"] and report["peak_picture_calls"] <= args.generate_concurrency
    ok = (
        ok
        and report["addresses_emailed_twice"] == 0
        and report["result_objects"] == report["final_states"].get("COMPLETED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
