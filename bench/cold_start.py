"""Cold start of each function against the floor of `import boto3` plus one client.

    python bench/cold_start.py [--rounds N] [--json] [--packages DIR]

With --packages, the children see only the standard library, `functions/` and DIR, made like
`sam build` makes the deployment package: `pip install -r functions/requirements.txt --target DIR`.
Without it they run in this interpreter's environment, whose extras (awscrt, pyOpenSSL, ...) botocore
imports when present, which the Lambda package does not have.

Every sample is a fresh interpreter with `functions/` on sys.path and an environment like Lambda's
(region, dummy credentials, LAMBDA_TASK_ROOT so the Tracer is live as with `Tracing: Active`).
The child times, with perf_counter, what a cold start pays before the first event's own work:
importing the handler module and building the clients and provider its first invocation builds.
Interpreter startup is excluded. Floor and candidates alternate round-robin in one run, so a
busy machine slows them alike; ratios are of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
TARGET_RATIO = 1.25

# What each function does before its first event's work: import, then the @cache'd builders
# its handler calls on the first invocation (settings, clients, provider).
FLOOR = 'import boto3\nboto3.client("s3", region_name="us-east-1")'
CANDIDATES: dict[str, str] = {
    "api": """
import reimagine.handlers.api
from reimagine import clients
clients.store(); clients.s3(); clients.dynamodb()
""",
    "caption": """
import reimagine.handlers.caption as handler
from reimagine import clients
clients.store(); clients.s3(); handler._captioner()
""",
    "generate": """
import reimagine.handlers.generate as handler
from reimagine import clients
clients.store(); clients.s3(); handler._generator()
""",
    "notify": """
import reimagine.handlers.notify
from reimagine import clients
clients.store(); clients.s3(); clients.ses()
""",
    # Not on the request path (a schedule), measured so it stays honest too.
    "sweeper": """
import reimagine.handlers.sweeper
from reimagine import clients
clients.store()
""",
}

# The clock starts after interpreter startup, before the first import of the measured code.
CHILD = """
import time
_t0, _c0 = time.perf_counter(), time.process_time()
exec(compile({code!r}, "<cold-start>", "exec"), {{}})
_elapsed, _cpu = time.perf_counter() - _t0, time.process_time() - _c0
import json, resource, sys
_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({{"ms": _elapsed * 1000, "cpu_ms": _cpu * 1000, "rss_mib": _rss / 1024, "modules": len(sys.modules)}}))
"""


def lambda_env(provider: str, packages: Path | None) -> dict[str, str]:
    """A Lambda-like environment, built from scratch so nothing from this shell leaks in."""
    path = [str(FUNCTIONS_DIR)] + ([str(packages)] if packages else [])
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join(path),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "AWS_LAMBDA_FUNCTION_NAME": "reimagine-bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "LAMBDA_TASK_ROOT": str(FUNCTIONS_DIR),
        "POWERTOOLS_SERVICE_NAME": "reimagine",
        "POWERTOOLS_METRICS_NAMESPACE": "Reimagine",
        "LOG_LEVEL": "INFO",
        "TABLE_NAME": "reimagine-requests",
        "UPLOADS_BUCKET": "reimagine-uploads",
        "RESULTS_BUCKET": "reimagine-results",
        "PROVIDER": provider,
        "SENDER_EMAIL": "reimagine@example.com",
    }


@dataclass
class Sample:
    ms: float
    cpu_ms: float  # CPU time: near what wall time would be on an idle machine, a check on noise
    rss_mib: float
    modules: int


def run_once(code: str, env: dict[str, str], isolated: bool) -> Sample:
    # -S: no site-packages, so only the deployment package's libraries are importable.
    flags = ["-S"] if isolated else []
    out = subprocess.run(
        [sys.executable, *flags, "-c", CHILD.format(code=code)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}):\n{out.stderr}")
    return Sample(**json.loads(out.stdout.strip().splitlines()[-1]))


def measure(rounds: int, provider: str, packages: Path | None) -> dict[str, list[Sample]]:
    env, isolated = lambda_env(provider, packages), packages is not None
    samples: dict[str, list[Sample]] = {"floor": [], **{name: [] for name in CANDIDATES}}
    names = list(CANDIDATES)
    for name in ["floor", *names]:  # warm-up: bytecode caches and page cache, not recorded
        run_once(FLOOR if name == "floor" else CANDIDATES[name], env, isolated)
    for r in range(rounds):
        # A floor sample next to every candidate sample; the candidates' order rotates per round.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples["floor"].append(run_once(FLOOR, env, isolated))
            samples[name].append(run_once(CANDIDATES[name], env, isolated))
    return samples


def summarise(samples: dict[str, list[Sample]]) -> list[dict]:
    floor_ms = statistics.median(s.ms for s in samples["floor"])
    floor_cpu = statistics.median(s.cpu_ms for s in samples["floor"])
    floor_rss = statistics.median(s.rss_mib for s in samples["floor"])
    rows = []
    for name, runs in samples.items():
        ms = statistics.median(s.ms for s in runs)
        cpu = statistics.median(s.cpu_ms for s in runs)
        rss = statistics.median(s.rss_mib for s in runs)
        ratio = ms / floor_ms
        rows.append(
            {
                "target": name,
                "samples": len(runs),
                "median_ms": round(ms, 1),
                "min_ms": round(min(s.ms for s in runs), 1),
                "max_ms": round(max(s.ms for s in runs), 1),
                "ratio": round(ratio, 3),
                "median_cpu_ms": round(cpu, 1),
                "cpu_ratio": round(cpu / floor_cpu, 3),
                "peak_rss_mib": round(rss, 1),
                "rss_ratio": round(rss / floor_rss, 3),
                "modules": runs[0].modules,
                "verdict": "floor" if name == "floor" else ("PASS" if ratio <= TARGET_RATIO else "FAIL"),
            }
        )
    return rows


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {"cpus": str(os.cpu_count()), "cpu": cpu, "python": platform.python_version()}


def print_table(rows: list[dict], info: dict[str, str], rounds: int) -> None:
    print(f"{info['cpus']} CPUs, {info['cpu']}, Python {info['python']}, {info['packages']}")
    print(f"{rounds} rounds; medians of time inside the child and of its peak RSS")
    header = f"{'target':<9} {'n':>3} {'median ms':>10} {'min':>7} {'max':>7} {'ratio':>6} "
    header += f"{'CPU ms':>7} {'CPU ratio':>9} "
    print(header + f"{'RSS MiB':>8} {'RSS ratio':>9} {'modules':>7}  verdict")
    for r in rows:
        print(
            f"{r['target']:<9} {r['samples']:>3} {r['median_ms']:>10.1f} {r['min_ms']:>7.1f} "
            f"{r['max_ms']:>7.1f} {r['ratio']:>6.2f} {r['median_cpu_ms']:>7.1f} {r['cpu_ratio']:>9.2f} "
            f"{r['peak_rss_mib']:>8.1f} {r['rss_ratio']:>9.2f} "
            f"{r['modules']:>7}  {r['verdict']}"
        )
    print(f"target: every ratio (of wall-time medians) <= {TARGET_RATIO}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15, help="samples per function (default 15)")
    parser.add_argument(
        "--provider",
        default="offline",
        choices=["offline", "bedrock"],
        help="PROVIDER of the caption and generate functions (default offline, the template's default)",
    )
    parser.add_argument(
        "--packages",
        type=Path,
        help="a `pip install -r functions/requirements.txt --target DIR`; children then see only it",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    if args.packages and not (args.packages / "boto3").is_dir():
        parser.error(f"{args.packages} does not look like an installed functions/requirements.txt")

    rows = summarise(measure(args.rounds, args.provider, args.packages))
    info = machine()
    info["packages"] = "deployment package (--packages)" if args.packages else "current environment"
    if args.json:
        print(json.dumps({"machine": info, "rounds": args.rounds, "target_ratio": TARGET_RATIO, "rows": rows}))
    else:
        print_table(rows, info, args.rounds)
    return 0 if all(r["verdict"] != "FAIL" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
