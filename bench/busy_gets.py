"""Back-to-back GETs through the local stack's HTTP API with every CPU busy: any 5xx is a false failure.

    python bench/busy_gets.py                        # 300 GETs, a CPU burner per core
    python bench/busy_gets.py --gets 300 --burners 2 --hold 30 --json

What it does: starts the local stack as `reimagine local up` does (moto's server, the event delivery,
the HTTP API on a free 127.0.0.1 port, each function in its own execution environments), creates one
request over HTTP, then starts `--burners` processes spinning on a CPU (`while True: pass`) and sends
`--gets` GETs one after the other, alternating `/requests/{id}` and `/openapi.json`, each of which
must answer 200. `--hold S` first waits S seconds with the environments warm, so they are older than
Lambda's 10 s init limit plus ApiFunction's Timeout (15 s) when the GETs come, as in a long-running
`local up` (the old false timeouts hit only such environments).

It prints the count of each status, latency p50/p95/max, and from ApiFunction's REPORT lines during
the GETs how many were cold starts (a new environment) and how many timed out; it exits 1 if any GET
was not 200. The burners are ended whatever happens; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The stage's throttling raised: this counts false timeouts in environments, not API Gateway's 429s.
UNTHROTTLED = {"ThrottlingBurstLimit": "5000", "ThrottlingRateLimit": "10000"}
sys.path[:0] = [str(ROOT / "functions"), str(ROOT / "infra")]

import requests  # noqa: E402

from reimagine_emulator.runner import StackConfig, running_stack  # noqa: E402


class Reports(logging.Handler):
    """Counts a function's REPORT lines with an Init Duration (cold starts) and its timeouts."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.cold_starts = self.timeouts = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.cold_starts += message.startswith("REPORT ") and "Init Duration" in message
        self.timeouts += "Task timed out after" in message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gets", type=int, default=300)
    parser.add_argument("--burners", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--hold", type=float, default=30.0, help="seconds to wait with warm environments first")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    with (
        tempfile.TemporaryDirectory() as outbox,
        running_stack(
            port=0, outbox=Path(outbox), config=StackConfig(template=ROOT / "template.yaml", parameters=UNTHROTTLED)
        ) as running,
    ):
        session = requests.Session()
        created = session.post(
            f"{running.api_url}/requests", json={"email": "busy@example.com", "content_type": "image/jpeg"}, timeout=60
        )
        created.raise_for_status()
        paths = [f"/requests/{created.json()['id']}", "/openapi.json"]
        time.sleep(args.hold)
        reports = Reports()
        api_log = logging.getLogger("reimagine_emulator.fn.ApiFunction")
        api_log.setLevel(logging.INFO)
        api_log.addHandler(reports)
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burners)]
        try:
            for n in range(args.gets):
                began = time.perf_counter()
                response = session.get(f"{running.api_url}{paths[n % 2]}", timeout=60)
                latencies.append((time.perf_counter() - began) * 1000)
                statuses[response.status_code] += 1
        finally:
            for burner in burners:
                burner.kill()
                burner.wait()
            api_log.removeHandler(reports)

    latencies.sort()
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{len(os.sched_getaffinity(0))} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}",
        "gets": args.gets,
        "burners": args.burners,
        "hold_s": args.hold,
        "statuses": dict(sorted(statuses.items())),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
        "max_ms": round(latencies[-1], 1),
        "api_cold_starts": reports.cold_starts,
        "api_timeouts": reports.timeouts,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name}: {value}")
    return 0 if statuses == Counter({200: args.gets}) else 1


if __name__ == "__main__":
    sys.exit(main())
