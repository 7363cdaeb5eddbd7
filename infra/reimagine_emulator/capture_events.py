"""Capture real event records from an AWS endpoint (LocalStack) into events/, for the handlers' tests.

    python -m reimagine_emulator.capture_events --endpoint-url http://127.0.0.1:4566 --out events

Runs the embedded stack against the endpoint under a fresh stack name and one photo through it, and
writes what the endpoint really produced:

- `<prefix>_s3_test_event.json`: the `s3:TestEvent` message S3 sends when the notification is configured;
- `<prefix>_s3_object_created.json`: the upload's S3 notification, as the endpoint wrote it to the queue;
- `<prefix>_dynamodb_stream_captioned.json`: the CAPTIONED stream record, as the local GeneratePipe reads
  it and sends it on (a DynamoDB Streams GetRecords record in Lambda's event shape), taken from the body
  of the GenerateQueue message GenerateFunction got.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from reimagine_emulator.runner import find_template
from reimagine_emulator.stack import EmbeddedStack
from reimagine_tools.template import Function

SAMPLE = Path(__file__).resolve().parent / "assets" / "sample.jpg"


def _first_message(
    stack: EmbeddedStack, queue_url: str, wanted: Callable[[dict[str, Any]], bool], *, keep: bool
) -> dict[str, Any]:
    """The first message in the queue that `wanted` accepts (waiting up to 30 s for it to arrive).

    With `keep` it stays in the queue (visibility 0) for the delivery to handle afterwards. Every
    other message is deleted, so that it is not received again while waiting.
    """
    sqs = stack.client("sqs")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2, VisibilityTimeout=0)
        for message in found.get("Messages", []):
            body = json.loads(message["Body"])
            if not (keep and wanted(body)):
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            if wanted(body):
                return body
    raise RuntimeError(f"no such message arrived in {queue_url} within 30 s")


def capture(endpoint_url: str, out: Path, prefix: str) -> list[Path]:
    recorded: list[tuple[Function, Any]] = []
    stack = EmbeddedStack(find_template(), stack_name=f"reimagine-capture-{uuid.uuid4().hex[:6]}")
    try:
        stack.start(endpoint_url)
        stack.on_invoke(lambda invoked: recorded.append((invoked.function, invoked.event)))
        assert stack.created is not None
        queue = next(q for q in stack.created.notification_queues if q.function.logical_id == "CaptionFunction")
        # S3 sends it when the notification is configured; the delivery would drop it anyway.
        test_event = _first_message(stack, queue.queue_url, lambda m: m.get("Event") == "s3:TestEvent", keep=False)

        data = SAMPLE.read_bytes()
        answer = stack.api_invoke(
            "POST", "/requests", {"email": "capture@example.com", "content_type": "image/jpeg", "size": len(data)}
        )
        created = answer.json()
        form = created["upload"]
        upload = requests.post(form["url"], data=form["fields"], files={"file": ("upload", data)}, timeout=30)
        upload.raise_for_status()
        notification = _first_message(stack, queue.queue_url, lambda m: bool(m.get("Records")), keep=True)
        stack.drain()
        status = stack.api_invoke("GET", f"/requests/{created['id']}").json()["status"]
        if status != "COMPLETED":
            raise RuntimeError(f"the captured request ended {status}, not COMPLETED")
    finally:
        stack.stop()

    queued = [e for fn, e in recorded if fn.logical_id == "GenerateFunction"]
    if not queued:
        raise RuntimeError("GenerateFunction was never invoked")
    # GenerateFunction reads GenerateQueue: each message's body is the stream record the pipe sent.
    captioned = [{"Records": [json.loads(r["body"]) for r in event["Records"]]} for event in queued]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, event in (
        ("s3_test_event", test_event),
        ("s3_object_created", notification),
        ("dynamodb_stream_captioned", captioned[0]),
    ):
        path = out / f"{prefix}_{name}.json"
        path.write_text(json.dumps(event, indent=2, default=str) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint-url", default="http://127.0.0.1:4566")
    parser.add_argument("--out", default="events", help="folder to write to (default events)")
    parser.add_argument("--prefix", default="localstack", help="file name prefix (default localstack)")
    args = parser.parse_args(argv)
    # The functions' own JSON logs and metrics would bury the list of files written.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    for path in capture(args.endpoint_url, Path(args.out), args.prefix):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
