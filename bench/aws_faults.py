"""AWS fault lane: requests through the local stack while a share of the functions' AWS calls fail.

    python bench/aws_faults.py                                   # 40 requests, 10 % of AWS calls fail
    python bench/aws_faults.py --requests 40 --fault-rate 0.1 --seed 5 --concurrency 8 --timeout 900 --json

What it does: starts the local stack (moto's server, each function in its own execution environments;
`--in-process`: all in this process) with the stack's fault-lane configuration (`AwsFaults`) putting
INJECTED_AWS_FAULT_RATE in every function's environment, so the clients in reimagine/clients.py answer that
share of their DynamoDB, S3 and SES calls with the service's own throttle or 5xx (reimagine/faults.py;
botocore retries them as real ones), and StuckAfterSeconds=60 (the template's minimum) so the
sweeper acts within the run. N client threads create a request (retrying a 5xx, as a client would),
upload a small JPEG with the presigned POST, and the stack delivers events in the background. Then,
as an operator would, it runs the sweeper every --sweep-every seconds (EventBridge's event, with the
sweeper's own calls faulted too) and `reimagine redrive` over the on-failure queue, until every
request is final and its email sent (or refused), or --timeout passes.

It prints the requests, the faults injected per service and code (counted from the functions'
"injected AWS fault" log lines; the AWS calls made are counted only in-process, where the injector
is this process's), the final states and codes, the
emails per request, the sweeps and re-drives it took, and exits 1 if a request is not final, an
email is missing or duplicated, or a result is missing. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "infra"), str(ROOT / "bench")]

import requests  # noqa: E402
from load import machine, photo  # noqa: E402

FINAL = ("COMPLETED", "FAILED")


def create(stack: Any, email: str, size: int, attempts: int = 5) -> tuple[dict[str, Any] | None, int]:
    """POST /requests, retrying 5xx with back-off as a client would; (body or None, 5xx answers seen)."""
    errors = 0
    for attempt in range(attempts):
        response = stack.api_invoke("POST", "/requests", {"email": email, "content_type": "image/jpeg", "size": size})
        if response.status == 201:
            return response.json(), errors
        if response.status < 500:
            return None, errors
        errors += 1
        time.sleep(0.2 * 2**attempt)  # a client's back-off, not synchronisation
    return None, errors


def submit(stack: Any, index: int) -> dict[str, Any]:
    email = f"fault-{index:04d}@example.com"
    data = photo(index)
    created, api_errors = create(stack, email, len(data))
    if created is None:
        return {"email": email, "id": None, "api_5xx": api_errors, "problem": "not created"}
    form = created["upload"]
    uploaded = requests.post(form["url"], data=form["fields"], files={"file": ("p.jpg", data)}, timeout=60)
    problem = None if uploaded.status_code in (200, 201, 204) else f"upload {uploaded.status_code}"
    return {"email": email, "id": created["id"], "api_5xx": api_errors, "problem": problem}


def records(stack: Any, table: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    ddb = stack.client("dynamodb")
    found = {}
    for request_id in ids:
        item = ddb.get_item(TableName=table, Key={"id": {"S": request_id}}, ConsistentRead=True).get("Item", {})
        found[request_id] = {
            "status": item.get("status", {}).get("S"),
            "error": item.get("error", {}).get("M", {}).get("code", {}).get("S"),
            "notified": "notified_at" in item,
            "notify_error": item.get("notify_error", {}).get("M", {}).get("code", {}).get("S"),
        }
    return found


def settled(found: dict[str, dict[str, Any]]) -> bool:
    return all(r["status"] in FINAL and (r["notified"] or r["notify_error"]) for r in found.values())


class FaultLines(logging.Handler):
    """Counts the functions' "injected AWS fault" lines (Powertools JSON, as the environments print
    them) per service and code, and keeps everything else they print out of the way."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.injected: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        if '"injected AWS fault"' not in line:
            return
        try:
            fault = str(json.loads(line).get("fault", ""))  # "before-send.dynamodb.PutItem 400 ThrottlingException"
        except ValueError:
            return
        event, _, code = fault.partition(" ")
        parts = event.split(".")
        if len(parts) >= 2:
            self.injected[f"{parts[1]} {code.split()[-1] if code else '?'}"] += 1


def run(
    n: int, rate: float, seed: int, concurrency: int, sweep_every: float, timeout: float, *, in_process: bool = False
) -> dict[str, Any]:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")  # in-process: every injected fault logs a warning
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    from reimagine import faults
    from reimagine_emulator.outbox import list_outbox
    from reimagine_emulator.stack import AwsFaults, EmbeddedStack

    functions_log = logging.getLogger("reimagine_emulator.fn")  # what the environments print
    fault_lines = FaultLines()
    functions_log.addHandler(fault_lines)
    propagates, functions_log.propagate = functions_log.propagate, False
    try:
        with tempfile.TemporaryDirectory(prefix="reimagine-faults-") as outbox_dir, redirect_stdout(io.StringIO()):
            stack = EmbeddedStack(
                ROOT / "template.yaml",
                # Its requests arrive faster than the stage's 10/s, which the local HttpApi applies.
                parameters={"StuckAfterSeconds": "60", "ThrottlingBurstLimit": "5000", "ThrottlingRateLimit": "10000"},
                aws_faults=AwsFaults(rate, seed),
                outbox_dir=outbox_dir,
                environments=not in_process,
            )
            summary = _run(stack, n, concurrency, sweep_every, timeout, Path(outbox_dir), list_outbox)
    finally:
        functions_log.removeHandler(fault_lines)
        functions_log.propagate = propagates
    injector = faults.current() if in_process else None
    return {
        "requests": n,
        "created": summary.pop("created"),
        "fault_rate": rate,
        "seed": seed,
        "design": "in-process" if in_process else "execution environments",
        "aws_calls": dict(injector.calls) if injector else "not counted (each environment's injector is its own)",
        "faults_injected": dict(sorted((injector.injected if injector else fault_lines.injected).items())),
        **summary,
        "machine": machine(),
    }


def _run(
    stack: Any, n: int, concurrency: int, sweep_every: float, timeout: float, outbox: Path, list_outbox: Any
) -> dict[str, Any]:
    from reimagine_emulator.delivery import Schedule
    from reimagine_tools.redrive import Redriver, targets_from_template

    with stack.start():
        assert stack.app is not None
        table = stack.app.functions["ApiFunction"].environment["TABLE_NAME"]
        sqs = stack.client("sqs")
        redriver = Redriver(
            sqs,
            stack.client("dynamodb"),
            stack.client("dynamodbstreams"),
            stack.client("s3"),
            targets_from_template(stack.app, sqs),
        )
        (sweeper,) = [
            s for s in stack.delivery.sources if isinstance(s, Schedule) and s.fn.logical_id == "SweeperFunction"
        ]
        started = time.monotonic()
        deadline = started + timeout
        stack.start_background_delivery()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            submitted = list(pool.map(lambda i: submit(stack, i), range(n)))
        ids = [s["id"] for s in submitted if s["id"]]
        sweeps, redriven = 0, Counter[str]()
        found = records(stack, table, ids)
        next_sweep = time.monotonic() + sweep_every
        done_by_retries: int | None = None  # settled through retries alone, before any sweep
        while not settled(found) and time.monotonic() < deadline:
            time.sleep(1.0)  # polling the table, not synchronisation
            if time.monotonic() >= next_sweep:
                if done_by_retries is None:
                    done_by_retries = sum(1 for r in found.values() if settled({"": r}))
                sweeper.fire()
                sweeps += 1
                for line in redriver.run():
                    redriven["deleted" if line.endswith("[deleted]") else "kept"] += 1
                next_sweep = time.monotonic() + sweep_every
            found = records(stack, table, ids)
        stack.delivery.stop_background()
        stack.drain()
        wall = time.monotonic() - started
        found = records(stack, table, ids)
        mails = Counter(m.to for m in list_outbox(outbox))
        results_bucket = stack.app.functions["GenerateFunction"].environment["RESULTS_BUCKET"]
        listed = stack.client("s3").list_objects_v2(Bucket=results_bucket, Prefix="results/")
        result_keys = {o["Key"] for o in listed.get("Contents", [])}
        depth = sqs.get_queue_attributes(
            QueueUrl=redriver.targets.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
    by_email = {s["email"]: s for s in submitted}
    completed = {rid for rid, r in found.items() if r["status"] == "COMPLETED"}
    return {
        "created": len(ids),
        "api_5xx_answers_retried": sum(s["api_5xx"] for s in submitted),
        "client_problems": dict(Counter(s["problem"] for s in submitted if s["problem"])),
        "final_states": dict(Counter(r["status"] or "MISSING" for r in found.values())),
        "error_codes": dict(Counter(r["error"] for r in found.values() if r["error"])),
        "notify_errors": dict(Counter(r["notify_error"] for r in found.values() if r["notify_error"])),
        "emails": sum(mails.values()),
        "requests_without_email": sum(1 for s in submitted if s["id"] and mails[s["email"]] == 0),
        "duplicate_emails": sum(c - 1 for e, c in mails.items() if c > 1 and e in by_email),
        "completed_without_result": len({f"results/{rid}.png" for rid in completed} - result_keys),
        "settled_before_any_sweep": len(ids) if done_by_retries is None else done_by_retries,
        "sweeps": sweeps,
        "redrive_messages": dict(redriven),
        "failure_queue_left": int(depth),
        "wall_seconds": round(wall, 1),
    }


def verdict(summary: dict[str, Any]) -> list[str]:
    problems = []
    not_final = summary["created"] - sum(summary["final_states"].get(s, 0) for s in FINAL)
    if not_final:
        problems.append(f"{not_final} request(s) not final")
    for key in ("requests_without_email", "duplicate_emails", "completed_without_result"):
        if summary[key]:
            problems.append(f"{summary[key]} {key.replace('_', ' ')}")
    if summary["created"] < summary["requests"]:
        problems.append(f"{summary['requests'] - summary['created']} request(s) never created")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--fault-rate", type=float, default=0.1, help="share of AWS calls that fail (default 0.1)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sweep-every", type=float, default=20.0, help="seconds between sweeps (default 20)")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--in-process", action="store_true", help="functions in this process (AWS calls counted)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    summary = run(
        args.requests,
        args.fault_rate,
        args.seed,
        args.concurrency,
        args.sweep_every,
        args.timeout,
        in_process=args.in_process,
    )
    problems = verdict(summary)
    if args.json:
        print(json.dumps({**summary, "problems": problems}, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
        print("verdict:", "; ".join(problems) if problems else "every request final, exactly one email each")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
