"""Resolve each function's `<LogicalId>.in` into `<LogicalId>.txt`: every distribution it ships, pinned.

    python functions/requirements/lock.py [PIP_ARGS...]   (`make lock` passes Lambda's platform)

pip resolves (`install --dry-run --report`) for the platform given, so the lock is what that
platform installs; the build then installs the lock with --no-deps, nothing more.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def lock(source: Path, pip_args: list[str]) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        resolve = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed"]
        subprocess.run([*resolve, "--report", str(report), *pip_args, "-r", str(source)], check=True)  # noqa: S603
        installs = json.loads(report.read_text())["install"]
    return sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in installs)


def main(pip_args: list[str]) -> int:
    for source in sorted(HERE.glob("*Function.in")):
        pins = lock(source, pip_args)
        header = f"# Generated from {source.name} by `make lock`: every distribution this function ships.\n"
        source.with_suffix(".txt").write_text(header + "".join(f"{pin}\n" for pin in pins))
        print(f"{source.with_suffix('.txt').name}: {len(pins)} distributions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
