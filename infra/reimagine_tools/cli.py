"""`reimagine`: submit photos, follow requests, list styles, check a configuration, redrive failures.

These commands work against any deployment (the API's URL, an AWS account or endpoint). The local
stack's own commands (`local up`, `demo`, `outbox`) are added by `reimagine_emulator.cli`, which is
what the `reimagine` console script runs; this package never imports the emulator.

Every failure is one clear line on stderr and a non-zero exit; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from reimagine_tools.api_client import ApiClient, ClientError
from reimagine_tools.sam_options import SamOptionError, SamOptions, load_env_vars, parse_parameter_overrides
from reimagine_tools.template import DEFAULT_STACK, TemplateError, find_template

DEFAULT_API = os.environ.get("REIMAGINE_API", "http://127.0.0.1:3000")
STATUS_WORDS = {
    "PENDING_UPLOAD": "waiting for the upload",
    "AWAITING_CONFIRMATION": "check your inbox at {email} and click the link; this carries on by itself",
    "CAPTIONING": "captioning the image",
    "CAPTIONED": "caption ready",
    "GENERATING": "generating the new picture",
    "COMPLETED": "done",
    "FAILED": "failed",
    "DELETED": "deleted by its owner: photo, picture, address and caption are gone",
}

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _progress(started: float):
    def show(record: dict[str, Any]) -> None:
        status = record["status"]
        words = STATUS_WORDS.get(status, "").format(email=record.get("email", "your address"))
        _say(f"  {time.monotonic() - started:5.1f}s  {status:<14} {words}")

    return show


def _summary(record: dict[str, Any]) -> str:
    if record["status"] == "COMPLETED":
        lines = [f"caption: {record.get('caption', '')}"]
        if record.get("style"):
            lines.append(f"style:   {record['style']['name']}")
        if record.get("caption_provider") == "offline":
            lines[0] += "  (offline provider: measured from the image, not AI)"
        if record.get("result"):
            lines.append(f"result:  {record['result']['url']}")
            lines.append(f"         (link valid until {record['result']['expires_at']})")
        return "\n".join(lines)
    if record["status"] == "DELETED":
        return f"request {record['id']} was deleted by its owner"
    error = record.get("error") or {}
    return f"request {record['id']} FAILED: {error.get('message', 'something went wrong on our side')}"


def cmd_submit(args: argparse.Namespace) -> int:
    client = ApiClient(args.api)
    request_id = client.submit(Path(args.image), args.email, args.style)
    _say(f"request {request_id}: uploaded {args.image}")
    if not args.wait:
        if args.json:
            print(json.dumps(client.status(request_id), indent=2))
        else:
            print(request_id)
        return EXIT_OK
    record = client.wait(request_id, timeout=args.timeout, on_change=_progress(time.monotonic()))
    if args.json:
        print(json.dumps(record, indent=2))
    elif record["status"] == "COMPLETED":
        print(_summary(record))
    if record["status"] != "COMPLETED":
        _say(_summary(record))
        return EXIT_FAILED
    return EXIT_OK


def cmd_styles(args: argparse.Namespace) -> int:
    listed = ApiClient(args.api).styles()
    if args.json:
        print(json.dumps(listed, indent=2))
        return EXIT_OK
    width = max(len(style["id"]) for style in listed["styles"])
    for style in listed["styles"]:
        default = "  (default)" if style["id"] == listed["default"] else ""
        print(f"{style['id']:<{width}}  {style['name']}: {style['description']}{default}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    record = ApiClient(args.api).status(args.id)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        words = STATUS_WORDS.get(record["status"], "").format(email=record.get("email", "your address"))
        print(f"{record['id']}  {record['status']}  ({words})")
        if record["status"] in ("COMPLETED", "FAILED", "DELETED"):
            print(_summary(record))
    return EXIT_OK if record["status"] != "FAILED" else EXIT_FAILED


def sam_options_of(args: argparse.Namespace) -> SamOptions:
    """The SAM options (-t, --parameter-overrides, --env-vars) as given on the command line."""
    return SamOptions(
        template=Path(args.template) if args.template else None,
        parameters=parse_parameter_overrides(args.parameter_overrides),
        env_vars=load_env_vars(args.env_vars) if args.env_vars else None,
    )


def cmd_doctor(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError as AwsError

    from reimagine_tools.doctor import Doctor, aws_clients, configuration, report, stack_parameters

    stack_config = sam_options_of(args)
    template = stack_config.template or find_template()
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    aws = aws_clients(region, args.endpoint_url) if (args.stack or args.endpoint_url) else None
    parameters = dict(stack_config.parameters)
    source = f"{template} with {len(parameters)} override(s)"
    if args.stack and aws is not None:
        try:
            deployed = stack_parameters(aws("cloudformation"), args.stack, template)
        except (AwsError, BotoCoreError) as exc:
            _say(f"reimagine: the stack {args.stack} could not be read: {exc}")
            return EXIT_ERROR
        parameters = {**deployed, **parameters}
        source = f"stack {args.stack} in {region} with {len(stack_config.parameters)} override(s)"
    config = configuration(template, parameters, stack_config.env_vars, source=source)
    where = args.endpoint_url or ("the account of the ambient credentials" if aws else "none")
    print(f"configuration: {config.source}; AWS: {where}")
    return report(Doctor(config, aws=aws, stack=args.stack).run(), print)


def cmd_redrive(args: argparse.Namespace) -> int:
    import boto3
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError as AwsError

    from reimagine_tools.redrive import Redriver, Targets, targets_from_outputs, targets_from_template
    from reimagine_tools.template import read_application

    session = boto3.Session(region_name=args.region)

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=args.endpoint_url)  # type: ignore[call-overload]

    try:
        sqs = client("sqs")
        targets: Targets | None = None
        if not (args.queue_url and args.table and args.uploads_bucket):
            try:  # a deployed stack knows its own names
                (stack,) = client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"]
                targets = targets_from_outputs(stack.get("Outputs", []))
            except (AwsError, BotoCoreError):
                targets = None
            if targets is None:  # the local stack: names from the template
                account = client("sts").get_caller_identity()["Account"]
                app = read_application(
                    args.template or find_template(),
                    stack_name=args.stack,
                    account_id=account,
                    region=session.region_name or "us-east-1",
                )
                targets = targets_from_template(app, sqs)
        targets = Targets(
            queue_url=args.queue_url or (targets.queue_url if targets else ""),
            table=args.table or (targets.table if targets else ""),
            uploads_bucket=args.uploads_bucket or (targets.uploads_bucket if targets else ""),
        )
        redriver = Redriver(
            sqs, client("dynamodb"), client("dynamodbstreams"), client("s3"), targets, dry_run=args.dry_run
        )
        count = 0
        for line in redriver.run(limit=args.limit):
            print(line, flush=True)
            count += 1
    except (AwsError, BotoCoreError) as exc:
        _say(f"reimagine redrive: {exc}")
        return EXIT_ERROR
    _say(f"{count} message(s) {'looked at (dry run)' if args.dry_run else 'handled'} from {targets.queue_url}")
    return EXIT_OK


Extension = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def add_api_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api", default=DEFAULT_API, help=f"API base URL (default {DEFAULT_API}, or $REIMAGINE_API)")


def add_sam_options(p: argparse.ArgumentParser) -> None:
    # As `sam local` spells them; --parameter-overrides takes several words, like SAM's OptionNargs.
    p.add_argument("-t", "--template", help="the SAM template (default: the nearest template.yaml)")
    p.add_argument(
        "--parameter-overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="template parameters, in SAM's syntax: Key=Value ... or ParameterKey=Key,ParameterValue=Value",
    )
    p.add_argument(
        "--env-vars",
        metavar="FILE",
        help='SAM\'s JSON: {"FunctionLogicalId": {"VAR": "value"}, "Parameters": {"VAR": "value"}}',
    )


def build_parser(extensions: Iterable[Extension] = (), description: str | None = None) -> argparse.ArgumentParser:
    """The CLI's commands; each extension adds its own subcommands (the emulator adds the local stack's)."""
    parser = argparse.ArgumentParser(prog="reimagine", description=description or __doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("submit", help="send an image; with --wait, follow it to the end")
    p.add_argument("image")
    p.add_argument("--email", required=True)
    p.add_argument("--wait", action="store_true", help="follow the request until it is final")
    p.add_argument("--json", action="store_true", help="print the (final) record as JSON on stdout, nothing else")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (default 300)")
    p.add_argument("--style", help="the style of the new picture: an id from `reimagine styles` (default: the API's)")
    add_api_option(p)
    p.set_defaults(run=cmd_submit)

    p = sub.add_parser("styles", help="list the styles a new picture can be painted in")
    p.add_argument("--json", action="store_true")
    add_api_option(p)
    p.set_defaults(run=cmd_styles)

    p = sub.add_parser("status", help="show a request")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    add_api_option(p)
    p.set_defaults(run=cmd_status)

    p = sub.add_parser("redrive", help="move what sits in the on-failure queue back through the pipeline")
    p.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="AWS endpoint (the local stack's, LocalStack's); default $AWS_ENDPOINT_URL, else AWS",
    )
    p.add_argument("--stack", default=DEFAULT_STACK, help=f"stack name (default {DEFAULT_STACK})")
    p.add_argument("-t", "--template", help="template.yaml naming a local stack's resources (default: found)")
    p.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    p.add_argument("--queue-url", help="the on-failure queue (default: from the stack)")
    p.add_argument("--table", help="the requests table (default: from the stack)")
    p.add_argument("--uploads-bucket", help="the uploads bucket (default: from the stack)")
    p.add_argument("--limit", type=int, default=100, help="messages per run (default 100)")
    p.add_argument("--dry-run", action="store_true", help="say what would be done; change and delete nothing")
    p.set_defaults(run=cmd_redrive)

    p = sub.add_parser("doctor", help="check a configuration against the live services, one line per check")
    add_sam_options(p)
    p.add_argument("--stack", help="read the parameters of this deployed stack (CloudFormation) instead")
    p.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="AWS endpoint of the SSM, SES and Bedrock checks (e.g. LocalStack); without it or --stack: skipped",
    )
    p.add_argument("--region", help="AWS region (default $AWS_REGION, else us-east-1)")
    p.set_defaults(run=cmd_doctor)

    for extend in extensions:
        extend(sub)
    return parser


def main(
    argv: list[str] | None = None,
    *,
    extensions: Iterable[Extension] = (),
    description: str | None = None,
    configuration_errors: tuple[type[Exception], ...] = (),
) -> int:
    """Run one command; `configuration_errors` are the extensions' own "the configuration, not the code"."""
    args = build_parser(extensions, description).parse_args(argv)
    not_the_code: tuple[type[Exception], ...] = (SamOptionError, TemplateError, *configuration_errors)
    try:
        return int(args.run(args))
    except ClientError as exc:
        _say(f"reimagine: {exc}")
        return EXIT_ERROR
    except not_the_code as exc:  # the configuration, not the code
        _say(f"reimagine: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        _say("reimagine: interrupted")
        return 130
    except OSError as exc:  # ports, files: the OS says it best
        _say(f"reimagine: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
