"""What the benchmarks that measure in a fresh process share: running one measurement in its own interpreter
(so its peak memory and its imports are its own), and replacing their section of docs/benchmarks.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_worker(script: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python script *args` in a fresh interpreter; the JSON object it printed last."""
    out = subprocess.run([sys.executable, script, *args], check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def write_section(section: str, path: Path) -> None:
    """Replace the section headed by `section`'s first line in the shared document, leaving the others alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    heading = section.splitlines()[0]
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text.rstrip("\n") + "\n")
