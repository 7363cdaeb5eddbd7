"""Tiny Lambda handlers for the local-stack tests: they record what they receive and fail on request.

Stream items steer the handler through their `mode` attribute:
  ok          processed
  fail-once   reported in batchItemFailures the first time it is seen, processed after that
  poison      raises (the whole batch fails) every time
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter, defaultdict
from typing import Any

import boto3

CALLS: defaultdict[str, list[Any]] = defaultdict(list)
SEEN: Counter[str] = Counter()
CONTEXTS: list[dict[str, Any]] = []
DELIVERED = threading.Event()


def reset() -> None:
    CALLS.clear()
    SEEN.clear()
    CONTEXTS.clear()
    DELIVERED.clear()


def _key(record: dict) -> str:
    return record["dynamodb"]["Keys"]["id"]["S"]


def _mode(record: dict) -> str:
    return record["dynamodb"].get("NewImage", {}).get("mode", {}).get("S", "ok")


def on_upload(event: dict, context: Any) -> dict:
    CALLS["on_upload"].append(event)
    DELIVERED.set()
    if any("fail" in r["s3"]["object"]["key"] for r in event.get("Records", [])):
        raise RuntimeError("cannot process this upload")
    return {"processed": len(event.get("Records", []))}


def on_change(event: dict, context: Any) -> dict:
    records = event["Records"]
    CALLS["on_change"].append([_key(r) for r in records])
    CONTEXTS.append(
        {
            "function_name": context.function_name,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "memory": context.memory_limit_in_mb,
            "arn": context.invoked_function_arn,
            "request_id": context.aws_request_id,
            "table_env": os.environ.get("TABLE_NAME"),
        }
    )
    if any(_mode(r) == "poison" for r in records):
        raise RuntimeError("poison record")
    failures = []
    for record in records:
        key = _key(record)
        SEEN[key] += 1
        if _mode(record) == "fail-once" and SEEN[key] == 1:
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
    return {"batchItemFailures": failures}


def on_every_change(event: dict, context: Any) -> dict:
    CALLS["on_every_change"].append(event)
    return {"batchItemFailures": []}


def echo_api(event: dict, context: Any) -> dict:
    if event["rawPath"] == "/boom":
        raise RuntimeError("boom")
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json", "x-route": event["routeKey"]},
        "cookies": ["a=1; Path=/", "b=2"],
        "body": json.dumps(event),
    }


def mailer(event: dict, context: Any) -> dict:
    ses = boto3.client("ses")
    for record in event["Records"]:
        key = record["s3"]["object"]["key"]
        ses.send_email(
            Source=os.environ["SENDER_EMAIL"],
            Destination={"ToAddresses": ["someone@example.com"]},
            Message={
                "Subject": {"Data": f"got {key}"},
                "Body": {
                    "Text": {"Data": f"We got {key}."},
                    "Html": {
                        "Data": f'<html><body><p>We got <a href="https://x.example/{key}">{key}</a>.</p></body></html>'
                    },
                },
            },
        )
    return {}


# Per-invocation state in a module global, as Powertools' resolver keeps the current event.
CURRENT: dict[str, Any] = {}
OVERLAPS: Counter[str] = Counter()
IN_FLIGHT: Counter[str] = Counter()
_in_flight_lock = threading.Lock()


def remembers_event(event: dict, context: Any) -> dict:
    """Stores the event globally, yields the CPU, then answers from the global."""
    name = context.function_name
    with _in_flight_lock:
        IN_FLIGHT[name] += 1
        if IN_FLIGHT[name] > 1:
            OVERLAPS[name] += 1
    try:
        CURRENT[name] = event
        threading.Event().wait(0.002)
        return {"echo": CURRENT[name]["n"]}
    finally:
        with _in_flight_lock:
            IN_FLIGHT[name] -= 1


PARTNER = threading.Barrier(2, timeout=5)


def meets_partner(event: dict, context: Any) -> dict:
    """Returns only once another invocation is inside too (raises BrokenBarrierError otherwise)."""
    PARTNER.wait()
    return {"met": context.function_name}


SCHEDULE_FAILS = threading.Event()


def on_schedule(event: dict, context: Any) -> dict:
    CALLS["on_schedule"].append(event)
    if SCHEDULE_FAILS.is_set():
        raise RuntimeError("sweep failed")
    return {}


def on_work(event: dict, context: Any) -> dict:
    """An SQS-triggered handler over piped stream records: `mode` steers it as for on_change."""
    records = event["Records"]
    CALLS["on_work"].append(event)
    failures = []
    for record in records:
        stream_record = json.loads(record["body"])
        key, mode = _key(stream_record), _mode(stream_record)
        SEEN[key] += 1
        if mode == "poison" or (mode == "fail-once" and SEEN[key] == 1):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
