"""Cold start of each function as shipped, against the floor of `import boto3` plus one client.

    python bench/cold_start.py [--rounds N] [--importtime] [--json] [--keep DIR] [--only ApiFunction,...]

Builds, in one run, with the runtime's Python (python3.13, the interpreter `make runtime-python` names):

- after: each function's artifact as `sam build` now makes it, `make build-<LogicalId> PLATFORM=host`
  (its own locked distributions, the reimagine package, unchecked-hash bytecode);
- before: the package the previous `sam build` made for every function: every distribution any
  function uses, unpacked from wheels with no bytecode (as aws-lambda-builders' pip workflow
  unpacks them), plus the reimagine sources;
- floor: boto3 and its dependencies from the same lock, compiled the same way as "after" (the
  runtime's own boto3 is compiled).

Every sample is a fresh `python3.13 -S -B` (no site-packages, no bytecode written, as on Lambda's
read-only /var/task; PYTHONDONTWRITEBYTECODE=1 too) with only that artifact on its path and a
Lambda-like environment (region, dummy credentials, LAMBDA_TASK_ROOT so the Tracer is live as with
`Tracing: Active`). The child times, with perf_counter and process_time, what a cold start pays
before the first event's own work: importing the handler module and building the clients and
provider its first invocation builds. Interpreter startup is excluded. Floor, before and after
samples alternate in one run, so a busy machine slows them alike; ratios are of medians over the
floor's. The verdict is on CPU time: a cold start is one thread, so on an idle machine its wall time
is its CPU time, while on a shared one wall time mostly measures the other jobs.

--importtime adds, per function, the `-X importtime` self time of every module the floor does not
load, summed by top-level package: the minimum over the rounds, the least disturbed reading.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "functions" / "requirements"
TARGET_RATIO = 1.5
FLOOR_DISTRIBUTIONS = ("boto3", "botocore", "jmespath", "python-dateutil", "s3transfer", "six", "urllib3")

# What each function does before its first event's work: import, then the @cache'd builders
# its handler calls on the first invocation (settings, clients, provider).
FLOOR = 'import boto3\nboto3.client("s3", region_name="us-east-1")'
CANDIDATES: dict[str, str] = {
    "ApiFunction": """
import reimagine.handlers.api
from reimagine import clients
clients.store(); clients.s3(); clients.dynamodb()
""",
    "CaptionFunction": """
import reimagine.handlers.caption as handler
from reimagine import clients
clients.store(); clients.s3(); handler._captioner()
""",
    "GenerateFunction": """
import reimagine.handlers.generate as handler
from reimagine import clients
clients.store(); clients.s3(); handler._generator()
""",
    "NotifyFunction": """
import reimagine.handlers.notify
from reimagine import clients
clients.store(); clients.s3(); clients.ses()
""",
    # Not on the request path (a schedule), measured so it stays honest too.
    "SweeperFunction": """
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


def runtime_python() -> str:
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "runtime-python"], capture_output=True, text=True)
    if not out.stdout.strip():
        sys.exit("cold_start: needs python3.13 (the Lambda runtime's Python) on PATH or in pyenv")
    return out.stdout.strip()


def locked(function: str) -> list[str]:
    lines = (REQUIREMENTS / f"{function}.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def pip_install(python: str, pins: list[str], target: Path) -> None:
    subprocess.run(
        [
            *(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--root-user-action=ignore"),
            *("--no-deps", "--no-compile", "--only-binary=:all:", "--target", str(target), *pins),
        ],
        check=True,
    )
    shutil.rmtree(target / "bin", ignore_errors=True)


def compile_unchecked(python: str, target: Path) -> None:
    subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(target)],
        check=True,
    )


def build_all(python: str, work: Path, functions: list[str]) -> dict[str, Path]:
    """Every artifact this run measures: floor, before/<function>, after/<function>."""
    built: dict[str, Path] = {}
    floor = work / "floor"
    pip_install(python, [p for p in locked("ApiFunction") if p.split("==")[0] in FLOOR_DISTRIBUTIONS], floor)
    compile_unchecked(python, floor)
    built["floor"] = floor
    # Before: one package for all, the union of what the functions use, no bytecode.
    union = sorted({pin for name in CANDIDATES for pin in locked(name)})
    before = work / "before"
    pip_install(python, union, before)
    sources = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "functions" / "reimagine", before / "reimagine", ignore=sources)
    for name in functions:
        built[f"before/{name}"] = before  # the same package shipped as every function
        after = work / "after" / name
        after.mkdir(parents=True)
        subprocess.run(
            ["make", "-s", "--no-print-directory", "--makefile", str(ROOT / "Makefile"), f"build-{name}"],
            cwd=work,
            env={**os.environ, "ARTIFACTS_DIR": str(after), "PLATFORM": "host"},
            check=True,
        )
        built[f"after/{name}"] = after
    return built


def size(artifact: Path) -> dict[str, float]:
    files = [p for p in artifact.rglob("*") if p.is_file()]
    return {
        "mib": round(sum(p.stat().st_size for p in files) / 2**20, 1),
        "py": sum(p.suffix == ".py" for p in files),
        "pyc": sum(p.suffix == ".pyc" for p in files),
    }


def lambda_env(artifact: Path, provider: str) -> dict[str, str]:
    """A Lambda-like environment, built from scratch so nothing from this shell leaks in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(artifact),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": "reimagine-bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "LAMBDA_TASK_ROOT": str(artifact),
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


def run_once(python: str, code: str, env: dict[str, str]) -> Sample:
    # -S: no site-packages, so only the artifact's libraries are importable; -B: no bytecode written.
    out = subprocess.run(
        [python, "-S", "-B", "-c", CHILD.format(code=code)], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}):\n{out.stderr}")
    return Sample(**json.loads(out.stdout.strip().splitlines()[-1]))


def measure(python: str, built: dict[str, Path], functions: list[str], rounds: int, provider: str):
    def sample(target: str) -> Sample:
        code = FLOOR if target == "floor" else CANDIDATES[target.split("/", 1)[1]]
        return run_once(python, code, lambda_env(built[target], provider))

    targets = [f"{kind}/{name}" for name in functions for kind in ("before", "after")]
    samples: dict[str, list[Sample]] = {"floor": [], **{t: [] for t in targets}}
    for target in ["floor", *targets]:  # warm-up: the page cache, not recorded (no bytecode is written)
        sample(target)
    for r in range(rounds):
        # A floor sample next to every candidate sample; the candidates' order rotates per round.
        for target in targets[r % len(targets) :] + targets[: r % len(targets)]:
            samples["floor"].append(sample("floor"))
            samples[target].append(sample(target))
    return samples


def summarise(samples: dict[str, list[Sample]], built: dict[str, Path]) -> list[dict]:
    floor_ms = statistics.median(s.ms for s in samples["floor"])
    floor_cpu = statistics.median(s.cpu_ms for s in samples["floor"])
    rows = []
    for target, runs in samples.items():
        ms = statistics.median(s.ms for s in runs)
        cpu = statistics.median(s.cpu_ms for s in runs)
        ratio, cpu_ratio = ms / floor_ms, cpu / floor_cpu
        after = target.startswith("after/")
        rows.append(
            {
                "target": target,
                "samples": len(runs),
                "median_ms": round(ms, 1),
                "ratio": round(ratio, 2),
                "median_cpu_ms": round(cpu, 1),
                "cpu_ratio": round(cpu_ratio, 2),
                "peak_rss_mib": round(statistics.median(s.rss_mib for s in runs), 1),
                "modules": runs[0].modules,
                **size(built[target]),
                "verdict": ("PASS" if cpu_ratio <= TARGET_RATIO else "FAIL") if after else "",
            }
        )
    return rows


def import_costs(python: str, built: dict[str, Path], functions: list[str], rounds: int, provider: str):
    """Per function, `-X importtime` self time of the modules the floor does not load, by top-level package.

    Minimum per module over `rounds` fresh interpreters. Import time only: building clients is not in it.
    """

    def self_times(target: str) -> dict[str, int]:
        code = FLOOR if target == "floor" else CANDIDATES[target.split("/", 1)[1]]
        env = lambda_env(built[target], provider)
        out = subprocess.run(
            [python, "-S", "-B", "-X", "importtime", "-c", code], env=env, capture_output=True, text=True, check=True
        )
        times: dict[str, int] = {}
        for line in out.stderr.splitlines():
            if line.startswith("import time:") and "self [us]" not in line:
                self_us, _cumulative, name = line.removeprefix("import time:").split("|")
                times[name.strip()] = int(self_us)
        return times

    floor_modules = set(self_times("floor"))
    costs: dict[str, dict[str, float]] = {}
    for name in functions:
        least: dict[str, int] = {}
        for _ in range(rounds):
            for module, us in self_times(f"after/{name}").items():
                if module not in floor_modules:
                    least[module] = min(us, least.get(module, us))
        per_package: dict[str, float] = {}
        for module, us in least.items():
            package = module.split(".")[0]
            per_package[package] = per_package.get(package, 0) + us / 1000
        costs[name] = {p: round(ms, 1) for p, ms in sorted(per_package.items(), key=lambda kv: -kv[1]) if ms >= 1}
    return costs


def machine(python: str) -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"], capture_output=True)
    python_version = version.stdout.decode().strip()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return {"cpus": str(os.cpu_count()), "cpu": cpu, "python": python_version, "arch": platform.machine(), "date": when}


def print_table(rows: list[dict], info: dict[str, str], rounds: int) -> None:
    where = f"{info['cpus']} CPUs, {info['cpu']} ({info['arch']}), Python {info['python']}"
    print(f"{info['date']}; {where}; {rounds} rounds")
    header = f"{'target':<24} {'n':>3} {'median ms':>10} {'ratio':>6} {'CPU ms':>7} {'CPU ratio':>9} "
    print(header + f"{'RSS MiB':>8} {'modules':>7} {'MiB':>6} {'.py':>6} {'.pyc':>6}  verdict")
    for r in rows:
        print(
            f"{r['target']:<24} {r['samples']:>3} {r['median_ms']:>10.1f} {r['ratio']:>6.2f} "
            f"{r['median_cpu_ms']:>7.1f} {r['cpu_ratio']:>9.2f} {r['peak_rss_mib']:>8.1f} {r['modules']:>7} "
            f"{r['mib']:>6.1f} {r['py']:>6} {r['pyc']:>6}  {r['verdict']}"
        )
    print(f"target: every after/ CPU ratio (of CPU-time medians) <= {TARGET_RATIO}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="samples per target (default 10)")
    parser.add_argument(
        "--provider",
        default="offline",
        choices=["offline", "bedrock"],
        help="PROVIDER of the caption and generate functions (default offline, the template's default)",
    )
    parser.add_argument("--only", help="comma-separated logical ids (default: every function)")
    parser.add_argument("--keep", type=Path, help="build into this (new) directory and leave it there")
    parser.add_argument(
        "--importtime",
        action="store_true",
        help="also: what each shipped function imports beyond the floor, by package (-X importtime)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    functions = args.only.split(",") if args.only else list(CANDIDATES)
    if unknown := set(functions) - set(CANDIDATES):
        parser.error(f"unknown functions: {sorted(unknown)}")

    python = runtime_python()
    work = args.keep or Path(tempfile.mkdtemp(prefix="cold-start-"))
    try:
        built = build_all(python, work, functions)
        rows = summarise(measure(python, built, functions, args.rounds, args.provider), built)
        costs = import_costs(python, built, functions, args.rounds, args.provider) if args.importtime else {}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    info = machine(python)
    if args.json:
        result = {"machine": info, "rounds": args.rounds, "target_ratio": TARGET_RATIO, "rows": rows}
        print(json.dumps({**result, "import_ms_beyond_floor": costs}))
    else:
        print_table(rows, info, args.rounds)
        for name, packages in costs.items():
            listed = ", ".join(f"{package} {ms:.1f}" for package, ms in packages.items())
            print(f"{name} imports beyond the floor (ms, self): total {sum(packages.values()):.1f}: {listed}")
    return 0 if all(r["verdict"] != "FAIL" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
