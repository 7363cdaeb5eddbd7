"""`reimagine`: the operator tools' commands, plus the local stack's (`local up`, `demo`, `outbox`).

The `reimagine` console script runs this module. The commands that run the local stack import it
only when they run, so `reimagine submit` or `doctor` work without the local stack's extra installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from reimagine_emulator.invoke import EnvironmentConflict
from reimagine_tools import cli as tools
from reimagine_tools.cli import EXIT_OK, add_sam_options, sam_options_of

DEFAULT_OUTBOX = Path(os.environ.get("REIMAGINE_OUTBOX", ".reimagine/outbox"))
IN_PROCESS_HELP = (
    "run every function in this process, sharing one environment (a debugger's breakpoints in a handler "
    "work there), instead of each in its own execution environments as Lambda runs them (the default: "
    "AWS's Runtime Interface Client processes, each with only its own Environment, ended past its Timeout)"
)
_say = tools._say


class LocalStackNotInstalled(Exception):
    """The local stack's own dependencies are an extra: `reimagine submit` and `doctor` work without them."""


def _local_stack_installed() -> None:
    import importlib.util

    missing = [name for name in ("moto", "flask", "awslambdaric") if importlib.util.find_spec(name) is None]
    if missing:
        raise LocalStackNotInstalled(
            f"the local stack needs {', '.join(missing)}: pip install 'reimagine[local]' (make demo does)"
        )


def cmd_outbox(args: argparse.Namespace) -> int:
    from reimagine_emulator.outbox import list_outbox

    messages = list_outbox(Path(args.dir))
    if args.json:
        print(json.dumps([dataclasses.asdict(m) for m in messages], indent=2, default=str))
        return EXIT_OK
    if not messages:
        print(f"no messages in {args.dir}")
    for m in messages:
        print(f"{m.date}  to {m.to}  {m.subject}\n    {m.file}")
    return EXIT_OK


def cmd_local_up(args: argparse.Namespace) -> int:
    import logging

    _local_stack_installed()
    from reimagine_emulator.runner import running_stack

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # credential and endpoint chatter
    with running_stack(
        port=args.port,
        endpoint_url=args.endpoint_url,
        outbox=Path(args.outbox),
        config=sam_options_of(args),
        environments=not args.in_process,
    ) as running:
        _say(f"reimagine local stack: API {running.api_url}  (AWS endpoint {running.endpoint_url})")
        _say(f"  web page:  {running.api_url}/")
        _say(f"  outbox:    {args.outbox}   (reimagine outbox)")
        _say("  Ctrl-C to stop")
        running.wait()
        _say("stopping")
    _say("stopped")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    _local_stack_installed()
    from reimagine_emulator.demo import run_demo

    image = Path(args.image) if args.image else None
    sample = resources.files("reimagine_emulator.assets").joinpath("sample.jpg")
    with resources.as_file(sample) as sample_path:
        return run_demo(
            image or sample_path,
            email=args.email,
            out=Path(args.out),
            say=_say,
            config=sam_options_of(args),
            environments=not args.in_process,
        )


def add_local_commands(sub: Any) -> None:
    p = sub.add_parser("outbox", help="list the mail the local stack sent, newest first")
    p.add_argument("--json", action="store_true")
    p.add_argument("--dir", default=str(DEFAULT_OUTBOX), help=f"outbox folder (default {DEFAULT_OUTBOX})")
    p.set_defaults(run=cmd_outbox)

    local = sub.add_parser("local", help="the local stack").add_subparsers(dest="local_command", required=True)
    p = local.add_parser("up", help="run the whole pipeline on this machine until Ctrl-C")
    p.add_argument("--port", type=int, default=3000, help="HTTP port of the API (default 3000)")
    p.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="use this AWS endpoint (e.g. LocalStack) instead of starting the embedded emulator",
    )
    p.add_argument("--outbox", default=str(DEFAULT_OUTBOX), help="where sent mail is written as .eml")
    add_sam_options(p)
    p.add_argument("--in-process", action="store_true", help=IN_PROCESS_HELP)
    p.set_defaults(run=cmd_local_up)

    p = sub.add_parser("demo", help="run one image through a temporary local stack and keep the results")
    p.add_argument("image", nargs="?", help="an image (default: a bundled sample photo)")
    p.add_argument("--email", default="you@example.com")
    p.add_argument("--out", default="reimagine-demo", help="folder for the result, the original and the email")
    add_sam_options(p)
    p.add_argument("--in-process", action="store_true", help=IN_PROCESS_HELP)
    p.set_defaults(run=cmd_demo)


DESCRIPTION = "submit photos, follow requests, read the local outbox, run the local stack, run the demo"


def build_parser() -> argparse.ArgumentParser:
    return tools.build_parser(extensions=[add_local_commands], description=DESCRIPTION)


def main(argv: list[str] | None = None) -> int:
    not_the_code = (EnvironmentConflict, LocalStackNotInstalled)  # the configuration or the install
    return tools.main(argv, extensions=[add_local_commands], description=DESCRIPTION, configuration_errors=not_the_code)


if __name__ == "__main__":
    sys.exit(main())
