"""What 1,000 images cost on AWS: measured durations and the template's memory sizes, at published prices.

    python bench/cost.py                                          # the assumed durations below
    python bench/cost.py --duration CaptionFunction=2400 --duration GenerateFunction=7800
    python bench/cost.py --polls 10 --upload-mb 3 --images-per-day 200 --json
    python bench/cost.py --caption-fee 0.0004 --picture-fee 0.003  # provider fees, reported apart

Durations are milliseconds per invocation: pass what a load run or CloudWatch's REPORT lines measured
(`--duration Function=ms`, repeatable). Without them, DEFAULT_DURATIONS_MS is used, and the output
says which figures were assumed. Memory sizes come from template.yaml (each function's MemorySize,
else the Globals'), so a change there changes the figure.

Prices are us-east-1, on-demand, as AWS publishes them (PRICES names each source page and the date it
was read). Free tiers are left out: this is the marginal cost of an image. Provider fees (Hugging Face
Inference Providers, Bedrock) depend on the model and the serving provider, so they are passed in per
call and printed apart from the AWS total, never mixed into it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PER_IMAGES = 1000
GB = 1024**3


@dataclass(frozen=True)
class Price:
    usd: float
    per: str
    source: str


# Read 2026-12-01 from AWS's pricing pages (us-east-1, first tier, arm64 for Lambda).
PRICES_READ_ON = "2026-12-01"
PRICES = {
    "lambda_gb_second": Price(0.0000133334, "GB-second (arm64)", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_request": Price(0.20 / 1e6, "request", "https://aws.amazon.com/lambda/pricing/"),
    # On-demand throughput since the 2024-11-01 price cut.
    "dynamodb_write": Price(0.625 / 1e6, "write request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "dynamodb_read": Price(0.125 / 1e6, "read request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "dynamodb_storage": Price(0.25, "GB-month", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    # GetRecords made by Lambda's event source mappings are not charged.
    "dynamodb_stream_read_by_lambda": Price(0.0, "stream read", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "s3_put": Price(0.005 / 1000, "PUT/POST request", "https://aws.amazon.com/s3/pricing/"),
    "s3_get": Price(0.0004 / 1000, "GET/HEAD request", "https://aws.amazon.com/s3/pricing/"),
    "s3_storage": Price(0.023, "GB-month (Standard)", "https://aws.amazon.com/s3/pricing/"),
    "ses_email": Price(0.10 / 1000, "email", "https://aws.amazon.com/ses/pricing/"),
    "http_api_request": Price(1.00 / 1e6, "request", "https://aws.amazon.com/api-gateway/pricing/"),
}

# Milliseconds per invocation when nothing measured is passed: a hosted model captioning in ~2.5 s
# and drawing in ~8 s (the slow end the template is sized for); the rest is AWS calls.
DEFAULT_DURATIONS_MS = {
    "ApiFunction": 60.0,
    "CaptionFunction": 2500.0,
    "GenerateFunction": 8000.0,
    "NotifyFunction": 150.0,
    "SweeperFunction": 300.0,
}

# Functions the template deploys that no image passes through on the happy path, with why; the
# report names them instead of costing them (a test keeps this and the template in step).
NOT_PER_IMAGE = {
    "MailEventsFunction": "runs once per SES bounce or complaint, not per image",
}

# What one image does, on the happy path, from the code (reimagine.records, quota, storage, mail).
# Table writes: create (put), the quota counter, claim and advance for caption and for generate,
# notified_at. Every write that sets status/updated_at also moves the item in the status-updated_at
# index: one index write for the put, two (delete + put) for each of the four transitions.
TABLE_WRITES = 7
INDEX_WRITES = 1 + 2 * 4
# Strongly consistent reads of a <=4 KB item: notify's read, then each GET /requests/{id} a client makes.
NOTIFY_READS = 1
RECORD_KB = 1.0
# S3: the presigned POST upload, the result PUT; caption's HEAD and ranged GET, the client's download.
S3_PUTS = 2
S3_GETS = 3
SWEEPS_PER_DAY = 24 * 60 // 5  # rate(5 minutes)


@dataclass(frozen=True)
class Usage:
    """The inputs of one estimate: what was measured or assumed, and how clients behave."""

    durations_ms: dict[str, float]
    memory_mb: dict[str, int]
    polls: int = 5
    upload_mb: float = 2.0
    result_mb: float = 1.0
    upload_retention_days: int = 1
    result_retention_days: int = 30
    images_per_day: int = 1000
    caption_fee: float = 0.0
    picture_fee: float = 0.0


def _template() -> dict[str, Any]:
    from cfn_tools import load_yaml

    return load_yaml((ROOT / "template.yaml").read_text())


def template_memory_mb(template: dict[str, Any] | None = None) -> dict[str, int]:
    """Each function's MemorySize, the Globals' where it sets none."""
    template = template or _template()
    default = int(template["Globals"]["Function"]["MemorySize"])
    return {
        name: int(res.get("Properties", {}).get("MemorySize", default))
        for name, res in template["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }


def template_retention_days(template: dict[str, Any] | None = None) -> tuple[int, int]:
    parameters = (template or _template())["Parameters"]
    return int(parameters["UploadRetentionDays"]["Default"]), int(parameters["ResultRetentionDays"]["Default"])


def invocations_per_image(usage: Usage) -> dict[str, float]:
    # Generate takes one record a batch; notify is counted one a batch too (bursts batch up to 10,
    # so this is the high side). The sweeper runs on its schedule whatever the traffic.
    return {
        "ApiFunction": 1 + usage.polls,
        "CaptionFunction": 1,
        "GenerateFunction": 1,
        "NotifyFunction": 1,
        "SweeperFunction": SWEEPS_PER_DAY / usage.images_per_day,
    }


def lines(usage: Usage) -> list[tuple[str, float]]:
    """(line item, USD per PER_IMAGES images), AWS only."""
    calls = invocations_per_image(usage)
    price = {name: p.usd for name, p in PRICES.items()}
    out: list[tuple[str, float]] = []
    for function, count in calls.items():
        gb_seconds = usage.memory_mb[function] / 1024 * usage.durations_ms[function] / 1000
        out.append((f"Lambda {function} duration", count * gb_seconds * price["lambda_gb_second"]))
    out.append(("Lambda requests", sum(calls.values()) * price["lambda_request"]))
    out.append(("HTTP API requests", (1 + usage.polls) * price["http_api_request"]))
    out.append(("DynamoDB writes (table + status index)", (TABLE_WRITES + INDEX_WRITES) * price["dynamodb_write"]))
    out.append(("DynamoDB reads", (NOTIFY_READS + usage.polls) * price["dynamodb_read"]))
    record_gb_months = RECORD_KB * 1024 / GB * usage.result_retention_days / 30
    out.append(("DynamoDB storage", record_gb_months * price["dynamodb_storage"]))
    # NotifyFunction's mapping reads each record through Lambda, free, listed so the bill is complete.
    # GeneratePipe reads the stream too; Pipes' reads are billed per GetRecords call (mostly its idle
    # polling, not per image) and are not in this figure (README, "What it costs").
    out.append(("DynamoDB stream reads (by Lambda)", price["dynamodb_stream_read_by_lambda"]))
    out.append(("S3 requests", S3_PUTS * price["s3_put"] + S3_GETS * price["s3_get"]))
    stored_gb_months = (
        (usage.upload_mb * usage.upload_retention_days + usage.result_mb * usage.result_retention_days) / 1024 / 30
    )
    out.append(("S3 storage", stored_gb_months * price["s3_storage"]))
    out.append(("SES email", price["ses_email"]))
    return [(name, per_image * PER_IMAGES) for name, per_image in out]


def estimate(usage: Usage) -> dict[str, Any]:
    items = lines(usage)
    return {
        "per_images": PER_IMAGES,
        "aws_usd": sum(usd for _, usd in items),
        "lines": dict(items),
        "provider_usd": (usage.caption_fee + usage.picture_fee) * PER_IMAGES,
        "durations_ms": usage.durations_ms,
        "memory_mb": usage.memory_mb,
        "prices_read_on": PRICES_READ_ON,
        "region": "us-east-1",
    }


def parse_durations(pairs: list[str], known: set[str]) -> dict[str, float]:
    durations: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in known:
            raise SystemExit(f"--duration takes Function=ms with Function one of {sorted(known)}: {pair!r}")
        ms = float(value)
        if not 0 < ms <= 900_000:
            raise SystemExit(f"--duration {name}: {ms} ms is outside Lambda's 0-900 s")
        durations[name] = ms
    return durations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", action="append", default=[], metavar="FUNCTION=MS")
    parser.add_argument("--polls", type=int, default=5, help="GET /requests/{id} per image (default 5)")
    parser.add_argument("--upload-mb", type=float, default=2.0, help="average photo size (default 2)")
    parser.add_argument("--result-mb", type=float, default=1.0, help="average result PNG size (default 1)")
    parser.add_argument("--images-per-day", type=int, default=1000, help="spreads the sweeper's runs (1000)")
    parser.add_argument("--caption-fee", type=float, default=0.0, help="provider USD per caption call")
    parser.add_argument("--picture-fee", type=float, default=0.0, help="provider USD per picture call")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.polls < 0 or args.images_per_day < 1 or args.upload_mb < 0 or args.result_mb < 0:
        parser.error("counts and sizes must not be negative (images per day at least 1)")

    template = _template()
    memory = template_memory_mb(template)
    measured = parse_durations(args.duration, set(DEFAULT_DURATIONS_MS))
    upload_days, result_days = template_retention_days(template)
    usage = Usage(
        durations_ms=DEFAULT_DURATIONS_MS | measured,
        memory_mb=memory,
        polls=args.polls,
        upload_mb=args.upload_mb,
        result_mb=args.result_mb,
        upload_retention_days=upload_days,
        result_retention_days=result_days,
        images_per_day=args.images_per_day,
        caption_fee=args.caption_fee,
        picture_fee=args.picture_fee,
    )
    # A function the estimate does not cost (a new one included) is named, never looked up.
    not_costed = {
        name: NOT_PER_IMAGE.get(name, "not in this estimate") for name in sorted(set(memory) - set(usage.durations_ms))
    }
    result = estimate(usage) | {
        "assumed_durations": sorted(set(DEFAULT_DURATIONS_MS) - set(measured)),
        "not_per_image": not_costed,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"AWS cost per {PER_IMAGES:,} images, us-east-1, prices read {PRICES_READ_ON}:")
    for name, usd in result["lines"].items():
        print(f"  {name:<42} ${usd:9.4f}")
    print(f"  {'total (AWS)':<42} ${result['aws_usd']:9.4f}")
    print(f"provider fees (apart): ${result['provider_usd']:.4f}")
    for function in sorted(usage.durations_ms):
        origin = "assumed" if function in result["assumed_durations"] else "measured"
        print(f"  {function}: {memory[function]} MB, {usage.durations_ms[function]:.0f} ms ({origin})")
    for function, why in not_costed.items():
        print(f"  {function}: {memory[function]} MB, not costed ({why})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
