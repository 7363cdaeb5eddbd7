"""What reading template.yaml costs a stack start, now that the wiring comes from samtranslator.

    python bench/template_read.py [--rounds N]

Every sample is a fresh interpreter that imports the local stack's template reader and reads the
application once (`read_application`, what `reimagine local up`, `demo` and every test stack do),
timed with perf_counter and process_time from before the import. "cold": no translation on disk, so
samtranslator is imported and translates; "warm": the translation is already in `.aws-sam/` beside
the template, as every later start with an unchanged template finds it. Each sample reads its own
copy of template.yaml in a fresh folder; cold and warm alternate, so a busy machine slows both alike.
Then, in this process: one translation alone, and a read whose translation is in memory.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
CHILD = """
import sys, time
wall, cpu = time.perf_counter(), time.process_time()
from reimagine_tools.template import read_application
read_application(sys.argv[1])
print(time.perf_counter() - wall, time.process_time() - cpu)
"""


def sample(folder: Path) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder / "template.yaml")], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]) * 1000, float(out[1]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    runs: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory() as scratch:
        warm = Path(scratch) / "warm"
        warm.mkdir()
        shutil.copy(TEMPLATE, warm)
        sample(warm)  # puts the translation on disk
        for round_ in range(args.rounds):
            cold = Path(scratch) / f"cold-{round_}"
            cold.mkdir()
            shutil.copy(TEMPLATE, cold)
            runs["cold"].append(sample(cold))
            runs["warm"].append(sample(warm))
    print(f"fresh process, import + read_application, median of {args.rounds} (wall / CPU ms):")
    for name, values in runs.items():
        walls, cpus = zip(*values, strict=True)
        print(f"  {name}: {statistics.median(walls):.0f} / {statistics.median(cpus):.0f}")

    from reimagine_tools import translated
    from reimagine_tools.template import Resolver, StackContext, load_template, read_application

    sam = load_template(TEMPLATE)
    parameters = Resolver(sam, StackContext()).parameters
    translated.translate(sam, region="us-east-1", parameters=parameters)  # the translator imported
    started = time.perf_counter()
    for _ in range(args.rounds):
        translated._translate(load_template(TEMPLATE), "us-east-1", dict(parameters))
    translation = (time.perf_counter() - started) / args.rounds * 1000
    started = time.perf_counter()
    for _ in range(args.rounds):
        read_application(TEMPLATE)
    cached = (time.perf_counter() - started) / args.rounds * 1000
    started = time.perf_counter()
    for _ in range(args.rounds):
        load_template(TEMPLATE)
    yaml = (time.perf_counter() - started) / args.rounds * 1000
    print(f"in process: a translation {translation:.0f} ms (YAML load included: {yaml:.0f} ms); ")
    print(f"  read_application with the translation in memory {cached:.0f} ms")


if __name__ == "__main__":
    main()
