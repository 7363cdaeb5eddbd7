"""Load run: N concurrent requests through the local stack's HTTP API, with provider failures injected.

    python bench/load.py                                    # 200 requests, 20 at a time, 10 % failures
    python bench/load.py --requests 200 --concurrency 20 --fail-rate 0.1 --seed 7 --timeout 900 --json

What it does: starts the local stack (moto's server, the event delivery and the HTTP API on a free
127.0.0.1 port; its functions in this process, `running_stack(environments=False)`, since what it
injects lives in this process) with the offline provider; wraps the offline captioner and generator in this process
so a seeded fraction of their calls raise a retryable ProviderError (PROVIDER_UNAVAILABLE, as a 503
from a real provider would); then N client threads each create a request over HTTP, upload a small
JPEG with the presigned POST and poll the request until it is final.

It prints requests/s, end-to-end p50/p95 latency (create -> final status seen by the client), the
count of each final state and error code, and the exactly-once checks: result objects against
COMPLETED requests, result writes per key, emails per address. It exits 1 if a request did not reach
a final state within --timeout, if anything was duplicated, or if a completed request has no result
or a final one no email. Loops are bounded by --timeout; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "infra")]

import requests  # noqa: E402
from PIL import Image  # noqa: E402

FINAL = ("COMPLETED", "FAILED")


# --- fault injection ---------------------------------------------------------------------------


class FaultInjector:
    """Decides, from one seeded generator, which provider calls fail. Thread-safe; counts what it did."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()

    def maybe_fail(self, what: str) -> None:
        from reimagine.errors import ProviderError

        with self._lock:
            self.calls[what] += 1
            fail = self._random.random() < self.rate
            if fail:
                self.failures[what] += 1
        if fail:
            raise ProviderError(f"injected {what} failure", code="PROVIDER_UNAVAILABLE", retryable=True)


class FlakyCaptioner:
    def __init__(self, inner: Any, faults: FaultInjector) -> None:
        self.inner, self.faults, self.name, self.model = inner, faults, inner.name, inner.model

    def caption(self, image: Any, deadline: Any) -> str:
        self.faults.maybe_fail("caption")
        return str(self.inner.caption(image, deadline))


class FlakyGenerator:
    def __init__(self, inner: Any, faults: FaultInjector) -> None:
        self.inner, self.faults, self.name, self.model = inner, faults, inner.name, inner.model

    def generate(self, prompt: str, deadline: Any) -> bytes:
        self.faults.maybe_fail("generate")
        return bytes(self.inner.generate(prompt, deadline))


@contextmanager
def injected_faults(faults: FaultInjector) -> Iterator[Counter[str]]:
    """Wrap the offline provider's builders and count result writes per key, in this process only.

    The handlers build their provider through `reimagine.providers.offline.build_*` (looked up on
    first use) and write results through `reimagine.storage.put_result`, so patching those module
    attributes reaches every function without any hook in production code.
    """
    from reimagine import storage
    from reimagine.providers import offline

    writes: Counter[str] = Counter()
    lock = threading.Lock()
    saved = (offline.build_captioner, offline.build_generator, storage.put_result)
    build_captioner, build_generator, put_result = saved

    def counting_put_result(s3: Any, *, bucket: str, key: str, png: bytes) -> None:
        put_result(s3, bucket=bucket, key=key, png=png)
        with lock:
            writes[key] += 1

    offline.build_captioner = lambda settings: FlakyCaptioner(build_captioner(settings), faults)
    offline.build_generator = lambda settings: FlakyGenerator(build_generator(settings), faults)
    storage.put_result = counting_put_result
    try:
        yield writes
    finally:
        offline.build_captioner, offline.build_generator, storage.put_result = saved


# --- one client --------------------------------------------------------------------------------


@dataclass
class Outcome:
    index: int
    email: str
    id: str | None = None
    status: str | None = None
    error_code: str | None = None
    seconds: float | None = None  # create -> final status seen
    problem: str | None = None
    polls: int = 0


def photo(index: int) -> bytes:
    """A small JPEG that differs per request (a gradient tinted by the index)."""
    tint = ((index * 53) % 256, (index * 97) % 256, (index * 29) % 256)
    gradient = Image.linear_gradient("L").resize((320, 240))
    picture = Image.merge("RGB", [gradient.point(lambda v, t=t: (v + t) % 256) for t in tint])
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85)
    return out.getvalue()


def run_one(api_url: str, index: int, deadline: float) -> Outcome:
    outcome = Outcome(index, f"load-{index:04d}@example.com")
    data = photo(index)
    with requests.Session() as http:
        started = time.monotonic()
        try:
            created = http.post(
                f"{api_url}/requests",
                json={"email": outcome.email, "content_type": "image/jpeg", "size": len(data)},
                timeout=30,
            )
            if created.status_code != 201:
                outcome.problem = f"create answered {created.status_code}: {created.text[:200]}"
                return outcome
            body = created.json()
            outcome.id = body["id"]
            form = body["upload"]
            uploaded = http.post(form["url"], data=form["fields"], files={"file": ("photo.jpg", data)}, timeout=60)
            if uploaded.status_code not in (200, 201, 204):
                outcome.problem = f"upload answered {uploaded.status_code}"
                return outcome
            interval = 0.1
            while time.monotonic() < deadline:
                outcome.polls += 1
                shown = http.get(f"{api_url}/requests/{outcome.id}", timeout=30)
                if shown.status_code == 200 and shown.json()["status"] in FINAL:
                    record = shown.json()
                    outcome.seconds = time.monotonic() - started
                    outcome.status = record["status"]
                    outcome.error_code = (record.get("error") or {}).get("code")
                    return outcome
                time.sleep(interval)  # a client's poll interval, not synchronisation
                interval = min(interval * 1.5, 1.0)
            outcome.problem = "not final before the timeout"
        except requests.RequestException as exc:
            outcome.problem = f"{type(exc).__name__}: {exc}"
        return outcome


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Report:
    requests: int
    concurrency: int
    fail_rate: float
    seed: int
    wall_seconds: float
    outcomes: list[Outcome]
    injected: dict[str, dict[str, int]]
    result_keys: list[str]
    result_writes: dict[str, int]
    mails_per_address: dict[str, int]
    failure_queue_depth: int
    stored_emails: dict[str, str] = field(default_factory=dict)  # request id -> the record's email
    machine: dict[str, str] = field(default_factory=dict)

    @property
    def final(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in FINAL]

    def summary(self) -> dict[str, Any]:
        latencies = sorted(o.seconds for o in self.final if o.seconds is not None)
        completed = {o.id for o in self.outcomes if o.status == "COMPLETED"}
        expected_keys = {f"results/{rid}.png" for rid in completed}
        addresses = {o.email for o in self.final}
        # A record must hold the address its own client sent; anything else is two requests mixed up.
        misattributed = [o for o in self.outcomes if o.id and self.stored_emails.get(o.id, o.email) != o.email]
        duplicated = sorted(a for a, n in self.mails_per_address.items() if n > 1)
        return {
            "requests": self.requests,
            "concurrency": self.concurrency,
            "fail_rate": self.fail_rate,
            "seed": self.seed,
            "wall_seconds": round(self.wall_seconds, 2),
            "requests_per_second": round(len(self.final) / self.wall_seconds, 2) if self.wall_seconds else 0.0,
            "latency_p50_seconds": round(_percentile(latencies, 50), 2) if latencies else None,
            "latency_p95_seconds": round(_percentile(latencies, 95), 2) if latencies else None,
            "latency_max_seconds": round(latencies[-1], 2) if latencies else None,
            "final_states": dict(Counter(o.status or "NOT FINAL" for o in self.outcomes)),
            "error_codes": dict(Counter(o.error_code for o in self.outcomes if o.error_code)),
            "client_problems": dict(Counter(o.problem for o in self.outcomes if o.problem)),
            "injected_failures": self.injected,
            "result_objects": len(self.result_keys),
            "duplicate_result_objects": len(self.result_keys) - len(set(self.result_keys) & expected_keys),
            "completed_without_result": len(expected_keys - set(self.result_keys)),
            "results_written_more_than_once": sum(1 for n in self.result_writes.values() if n > 1),
            "emails": sum(self.mails_per_address.values()),
            "duplicate_emails": sum(n - 1 for n in self.mails_per_address.values() if n > 1),
            "final_without_email": len(addresses - set(self.mails_per_address)),
            "misattributed_records": len(misattributed),
            "details": {
                "misattributed": [
                    f"{o.id}: sent {o.email}, stored {self.stored_emails.get(str(o.id))} ({o.status} {o.error_code})"
                    for o in misattributed[:5]
                ],
                "duplicate_email_addresses": duplicated[:5],
                "final_without_email": sorted(addresses - set(self.mails_per_address))[:5],
            },
            "failure_queue_depth": self.failure_queue_depth,
            "machine": self.machine,
        }


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]


def machine() -> dict[str, str]:
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": str(os.cpu_count()),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def wait_for(condition: Callable[[], bool], deadline: float, interval: float = 0.5) -> bool:
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def run(n: int, concurrency: int, fail_rate: float, seed: int, timeout: float) -> Report:
    # Quiet functions (warnings only), no metrics or traces: this measures the pipeline, not logging.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    from reimagine_emulator.outbox import list_outbox
    from reimagine_emulator.runner import StackConfig, running_stack

    # With metrics disabled Powertools still keeps every value and prints an EMF blob at each 100th,
    # and warns on every empty flush: neither says anything about this run.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    faults = FaultInjector(fail_rate, seed)
    with (
        tempfile.TemporaryDirectory(prefix="reimagine-load-") as outbox_dir,
        injected_faults(faults) as writes,
        open(os.devnull, "w") as sink,
        redirect_stdout(sink),
    ):
        outbox = Path(outbox_dir)
        # In this process (not execution environments): the fault wrappers and the result-write count
        # patch this process's modules, which environments would not see.
        # The stage's throttling raised: the load measures the pipeline, not API Gateway's 429s.
        unthrottled = StackConfig(parameters={"ThrottlingBurstLimit": "5000", "ThrottlingRateLimit": "10000"})
        with running_stack(port=0, outbox=outbox, environments=False, config=unthrottled) as running:
            stack = running.stack
            assert stack.app is not None
            provider = stack.app.functions["CaptionFunction"].environment.get("PROVIDER")
            if provider != "offline":
                raise SystemExit(f"the local stack runs provider {provider!r}; this load run needs offline")
            print(f"stack up: API {running.api_url}, emulator {running.endpoint_url}", file=sys.stderr)
            deadline = time.monotonic() + timeout
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="client") as pool:
                outcomes = list(pool.map(lambda i: run_one(running.api_url, i, deadline), range(n)))
            wall = time.monotonic() - started
            # Every final request gets its email after its final status is written: wait for those.
            finals = sum(1 for o in outcomes if o.status in FINAL)
            wait_for(lambda: len(list_outbox(outbox)) >= finals, deadline)
            stack.drain(timeout=max(5.0, deadline - time.monotonic()))
            env = stack.app.functions["GenerateFunction"].environment
            s3 = stack.client("s3")
            keys = [
                item["Key"]
                for page in s3.get_paginator("list_objects_v2").paginate(
                    Bucket=env["RESULTS_BUCKET"], Prefix="results/"
                )
                for item in page.get("Contents", [])
            ]
            sqs = stack.client("sqs")
            queue_url = sqs.get_queue_url(QueueName=stack.app.queues["FailureQueue"].name)["QueueUrl"]
            depth = int(
                sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])[
                    "Attributes"
                ]["ApproximateNumberOfMessages"]
            )
            mails = Counter(entry.to for entry in list_outbox(outbox))
            table = stack.app.functions["ApiFunction"].environment["TABLE_NAME"]
            ddb = stack.client("dynamodb")
            stored = {}
            for o in outcomes:
                if o.id:
                    item = ddb.get_item(TableName=table, Key={"id": {"S": o.id}}).get("Item", {})
                    stored[o.id] = item.get("email", {}).get("S", "")
    return Report(
        requests=n,
        concurrency=concurrency,
        fail_rate=fail_rate,
        seed=seed,
        wall_seconds=wall,
        outcomes=outcomes,
        injected={"calls": dict(faults.calls), "failures": dict(faults.failures)},
        result_keys=keys,
        result_writes=dict(writes),
        mails_per_address=dict(mails),
        failure_queue_depth=depth,
        stored_emails=stored,
        machine=machine(),
    )


def verdict(summary: dict[str, Any]) -> list[str]:
    """What makes the run fail; empty when every request ended once, with one result and one email."""
    problems = []
    not_final = summary["requests"] - sum(summary["final_states"].get(s, 0) for s in FINAL)
    if not_final:
        problems.append(f"{not_final} request(s) did not reach a final state")
    for key, what in (
        ("duplicate_result_objects", "duplicate result object(s)"),
        ("completed_without_result", "COMPLETED request(s) without a result object"),
        ("results_written_more_than_once", "result(s) written more than once"),
        ("duplicate_emails", "duplicate email(s)"),
        ("final_without_email", "final request(s) without an email"),
        ("misattributed_records", "record(s) holding another client's address"),
    ):
        if summary[key]:
            problems.append(f"{summary[key]} {what}")
    return problems


def print_summary(summary: dict[str, Any]) -> None:
    m = summary["machine"]
    print(f"machine: {m['cpus']} CPUs, {m['cpu_model']}; Python {m['python']}; {m['date']}")
    print(
        f"requests: {summary['requests']} at concurrency {summary['concurrency']}, "
        f"injected provider failure rate {summary['fail_rate']:.0%} (seed {summary['seed']})"
    )
    print(f"wall time: {summary['wall_seconds']} s, {summary['requests_per_second']} requests/s")
    print(
        f"end-to-end latency: p50 {summary['latency_p50_seconds']} s, p95 {summary['latency_p95_seconds']} s, "
        f"max {summary['latency_max_seconds']} s"
    )
    print(f"final states: {summary['final_states']}")
    print(f"error codes: {summary['error_codes'] or '{}'}")
    print(f"injected failures: {summary['injected_failures']}")
    print(
        f"results: {summary['result_objects']} objects, {summary['duplicate_result_objects']} duplicate, "
        f"{summary['completed_without_result']} missing, {summary['results_written_more_than_once']} written twice"
    )
    print(
        f"emails: {summary['emails']}, {summary['duplicate_emails']} duplicate, "
        f"{summary['final_without_email']} final requests without one"
    )
    print(f"records holding another client's address: {summary['misattributed_records']}")
    print(f"on-failure queue depth: {summary['failure_queue_depth']}")
    for name, items in summary["details"].items():
        if items:
            print(f"{name.replace('_', ' ')}: {'; '.join(items)}")
    if summary["client_problems"]:
        print(f"client problems: {summary['client_problems']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="how many requests (default 200)")
    parser.add_argument("--concurrency", type=int, default=20, help="client threads (default 20)")
    parser.add_argument("--fail-rate", type=float, default=0.1, help="share of provider calls that fail (0.1)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the injected failures (default 7)")
    parser.add_argument("--timeout", type=float, default=900.0, help="overall bound in seconds (default 900)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or not 0 <= args.fail_rate < 1:
        parser.error("--requests and --concurrency must be >= 1, --fail-rate in [0, 1)")

    report = run(args.requests, args.concurrency, args.fail_rate, args.seed, args.timeout)
    summary = report.summary()
    problems = verdict(summary)
    if args.json:
        print(json.dumps({**summary, "problems": problems}, indent=2))
    else:
        print_summary(summary)
        print("OK: every request final, nothing duplicated" if not problems else "FAILED: " + "; ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
