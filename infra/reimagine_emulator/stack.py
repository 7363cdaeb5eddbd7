"""The embedded stack: the template's resources on an AWS endpoint, each function in its own environments.

    with EmbeddedStack("template.yaml").start() as stack:   # moto's server on a free local port
        status, headers, body = stack.api_invoke("POST", "/requests", {"email": ...})
        ...upload...
        stack.drain()                                        # every pending event delivered

`start(endpoint_url)` targets another endpoint instead (LocalStack: http://127.0.0.1:4566), or
`start(REAL_AWS)` the account of the ambient credentials.

Functions run as Lambda runs them (environments.py): processes of their own, each with only its
function's Environment. `environments=False` runs them in this process instead (invoke.py), which
the load benchmark's in-process fault wrappers need. `on_invoke` observes every invocation, from
any event source or the API, and `invoke(fn, event)` delivers an event again through the same
environments, so tests never need to patch the stack.

moto keeps its state per process, so every moto server started in one process shares it: stacks
that run side by side in one process need different stack names (their resource names differ then).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

import boto3

from reimagine_emulator.api_events import Gateway, HttpResponse, Router
from reimagine_emulator.delivery import (
    Delivered,
    Delivery,
    FailureDestinations,
    PipeSource,
    QueueMapping,
    S3Notifications,
    Schedule,
    StreamMapping,
    _Source,
)
from reimagine_emulator.environments import ProcessInvoker
from reimagine_emulator.invoke import (
    Invoker,
    Throttled,
    apply_environment,
    cold_start,
    restore_environment,
    union_environment,
)
from reimagine_emulator.outbox import MailSource, Outbox, has_localstack_mail, localstack_mail, moto_mail
from reimagine_emulator.provider_secrets import store_provider_secrets
from reimagine_emulator.resources import Clients, Created, create_all
from reimagine_tools.sam_options import EnvVars
from reimagine_tools.template import DEFAULT_STACK, Application, Function, read_application

log = logging.getLogger("reimagine_emulator")

REAL_AWS = "aws"  # start(REAL_AWS): no endpoint override, the ambient credentials' account
_DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


def _is_moto_server(endpoint_url: str) -> bool:
    """moto's server answers its dashboard at /moto-api/; LocalStack and AWS do not."""
    if not endpoint_url.startswith(("http://", "https://")):
        return False
    try:
        with urllib.request.urlopen(f"{endpoint_url.rstrip('/')}/moto-api/", timeout=5) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass(frozen=True)
class AwsFaults:
    """The AWS fault lane (functions/reimagine/faults.py): every function's environments get
    INJECTED_AWS_FAULT_RATE/SEED, a test setting no template declares (never set on AWS)."""

    rate: float
    seed: int | None = None

    def environment(self) -> dict[str, str]:
        variables = {"INJECTED_AWS_FAULT_RATE": str(self.rate)}
        if self.seed is not None:
            variables["INJECTED_AWS_FAULT_SEED"] = str(self.seed)
        return variables


@dataclass(frozen=True)
class Invoked:
    """One invocation, as `on_invoke` listeners see it once it has ended."""

    function: Function
    event: Any
    error: BaseException | None


class _ObservedInvoker:
    """The stack's invoker: every source and the gateway call it, so every invocation is observed."""

    def __init__(self, inner: Invoker, listeners: list[Callable[[Invoked], None]]) -> None:
        self.inner = inner
        self.listeners = listeners

    def invoke(self, fn: Function, event: Any, *, wait: bool = True) -> Any:
        try:
            result = self.inner.invoke(fn, event, wait=wait)
        except Throttled:  # never invoked: the caller tries again
            raise
        except BaseException as exc:
            self._tell(Invoked(fn, event, exc))
            raise
        self._tell(Invoked(fn, event, None))
        return result

    def _tell(self, invoked: Invoked) -> None:
        for listener in list(self.listeners):
            listener(invoked)


def _environment_access(endpoint_url: str) -> dict[str, str]:
    """What an execution environment needs to reach AWS: Lambda's role credentials, here the
    stack's own (an emulator's dummy ones, or the ambient ones for a real account), and the endpoint."""
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    access = {name: os.environ[name] for name in names if os.environ.get(name)}
    if endpoint_url != REAL_AWS:
        access["AWS_ENDPOINT_URL"] = endpoint_url
    return access


class EmbeddedStack:
    def __init__(
        self,
        template_path: str | Path = "template.yaml",
        *,
        stack_name: str = DEFAULT_STACK,
        region: str = "us-east-1",
        parameters: dict[str, str] | None = None,
        api_base_url: str = "http://127.0.0.1:3000",
        env_overrides: dict[str, str] | None = None,
        env_vars: EnvVars | None = None,
        outbox_dir: str | Path | None = None,
        environments: bool = True,
        aws_faults: AwsFaults | None = None,
        aws_endpoints: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.template_path = Path(template_path)
        # True: each function runs in its own execution environments (environments.py), as on Lambda;
        # False: in this process, all functions sharing one environment (invoke.py).
        self.environments = environments
        self.aws_faults = aws_faults
        # Where one AWS service is reached instead of the stack's endpoint (a stand-in for Bedrock, say):
        # botocore's AWS_ENDPOINT_URL_<SERVICE>, part of the endpoint access every environment gets.
        self.aws_endpoints = {
            f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}": url
            for service, url in (aws_endpoints or {}).items()
        }
        # The operator's environment, where provider keys (HF_TOKEN, ...) are read from at start.
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self._listeners: list[Callable[[Invoked], None]] = []
        self._listeners_lock = threading.Lock()
        self.stack_name = stack_name
        self.region = region
        self.parameters = dict(parameters or {})
        self.api_base_url = api_base_url.rstrip("/")
        # Replace values only of variables a function declares (NotifyFunction's API_BASE_URL).
        self.env_overrides = {"API_BASE_URL": self.api_base_url, **(env_overrides or {})}
        self.env_vars = env_vars
        self.outbox_dir = Path(outbox_dir) if outbox_dir else None
        self.endpoint_url: str | None = None
        self.app: Application | None = None
        self.created: Created | None = None
        self.outbox: Outbox | None = None
        self._moto: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._delivery: Delivery | None = None
        self._router: Router[Function] | None = None
        self._gateway: Gateway[Function] | None = None
        self._invoker: _ObservedInvoker | None = None
        self._processes: ProcessInvoker | None = None
        self._session: boto3.Session | None = None
        self._is_moto = False
        self._clients: dict[str, Any] = {}

    # Lifecycle ------------------------------------------------------------------------------------

    def start(self, endpoint_url: str | None = None) -> EmbeddedStack:
        if endpoint_url is None:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access line per AWS call otherwise
            self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._moto.start()
            host, port = self._moto.get_host_and_port()
            endpoint_url = f"http://{host}:{port}"
        try:
            self._start(endpoint_url)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, endpoint_url: str) -> None:
        env: dict[str, str] = {}
        if endpoint_url != REAL_AWS:
            self.endpoint_url = endpoint_url
            # An emulator takes any credentials; real ones already in the environment are left alone.
            env = {k: os.environ.get(k) or v for k, v in _DUMMY_CREDENTIALS.items()}
            env.update(AWS_ENDPOINT_URL=endpoint_url, AWS_DEFAULT_REGION=self.region, AWS_REGION=self.region)
        # Powertools filters every logger whose name contains its service name ("reimagine") out of the
        # root handlers, which would hide this stack's own `reimagine_emulator` lines.
        env.setdefault(
            "POWERTOOLS_LOG_DEDUPLICATION_DISABLED", os.environ.get("POWERTOOLS_LOG_DEDUPLICATION_DISABLED") or "true"
        )
        self._is_moto = self._moto is not None or _is_moto_server(endpoint_url)
        self._saved_env = apply_environment(env, os.environ)
        self._session = boto3.Session(region_name=self.region)
        account = self.client("sts").get_caller_identity()["Account"]
        self.app = read_application(
            self.template_path,
            stack_name=self.stack_name,
            account_id=account,
            region=self.region,
            parameters=self.parameters,
            env_overrides=self.env_overrides,
            env_vars=self.env_vars,
        )
        clients = Clients(
            self.client("s3"),
            self.client("dynamodb"),
            self.client("sqs"),
            self.client("ses"),
            self.client("secretsmanager"),
        )
        self.created = create_all(self.app, clients)
        if endpoint_url != REAL_AWS:  # an emulator only: never overwrite an account's own parameters
            for name in store_provider_secrets(self.app.parameters, self.client("ssm"), self.environ):
                log.info("stored the provider key from the environment as the SecureString %s", name)
        # What the stack adds to every function's environment beyond the template: the fault lane, endpoints.
        added = {**(self.aws_faults.environment() if self.aws_faults else {}), **self.aws_endpoints}
        self.outbox = self._make_outbox(account)
        inner: Invoker
        if self.environments:
            # Environments start on their first invocation (as Lambda's do), so an unused function costs nothing.
            self._processes = ProcessInvoker(
                self.app.template_dir, region=self.region, extra_env={**_environment_access(endpoint_url), **added}
            )
            # The same invoke(fn, event) as the in-process Invoker, which is all delivery and the gateway use.
            inner = cast(Invoker, self._processes)
        else:
            # The functions' configuration, as one process can hold it (see invoke.py).
            function_env = {**union_environment(self.app.functions.values()), **added}
            self._saved_env.update(
                {k: v for k, v in apply_environment(function_env, os.environ).items() if k not in self._saved_env}
            )
            for package in self._packages():
                cold_start(package)
            inner = Invoker(self.app.template_dir)
        self._invoker = _ObservedInvoker(inner, self._listeners)
        self._router = Router(self.app.routes)
        self._gateway = Gateway(
            self._router,
            self._invoker.invoke,
            cors=self.app.cors,
            host=urlsplit(self.api_base_url).netloc or "localhost",
            account_id=account,
            name_of=lambda fn: fn.logical_id,
            throttling=self.app.throttling,
        )
        self._delivery = Delivery(self._sources(clients))

    def _make_outbox(self, account: str) -> Outbox | None:
        if self.outbox_dir is None:
            return None
        source: MailSource | None = None
        if self._moto is not None:
            source = moto_mail(account, self.region)
        elif self.endpoint_url and has_localstack_mail(self.endpoint_url):
            source = localstack_mail(self.endpoint_url)
        if source is None:
            log.warning("this endpoint does not show sent mail; the outbox stays empty")
            return None
        outbox = Outbox(self.outbox_dir, source)
        # Mail sent while the stack was down (killed mid-burst, its environments finishing their sends).
        for path in outbox.collect():
            log.info("mail sent while the stack was down written to %s", path)
        return outbox

    def _sources(self, clients: Clients) -> list[_Source]:
        assert self.app and self.created and self._invoker
        failures = FailureDestinations(clients.sqs)
        hook = self._after_invoke
        invoker = cast(Invoker, self._invoker)
        sources: list[_Source] = [
            S3Notifications(
                q.function,
                q.trigger,
                q.queue_url,
                clients.sqs,
                invoker,
                failures,
                hook,
                concurrency=self._async_concurrency(q.function),
            )
            for q in self.created.notification_queues
        ]
        streams = self.client("dynamodbstreams")
        for fn in self.app.functions.values():
            for trigger in fn.stream_triggers:
                stream_arn = self.created.stream_arns[trigger.table]
                sources.append(
                    StreamMapping(
                        fn,
                        trigger,
                        stream_arn,
                        streams,
                        invoker,
                        failures,
                        self.region,
                        # A table this run created has only records written after start: read them all.
                        start_at_latest=trigger.starting_position == "LATEST"
                        and trigger.table not in self.created.new_tables,
                        after_invoke=hook,
                    )
                )
        for pipe in self.app.pipes.values():
            sources.append(
                PipeSource(
                    pipe,
                    self.created.stream_arns[pipe.table],
                    streams,
                    clients.sqs,
                    self.created.queue_urls[pipe.queue],
                    failures,
                    self.region,
                    self.app.context.account_id,
                    start_at_latest=pipe.starting_position == "LATEST" and pipe.table not in self.created.new_tables,
                )
            )
        for fn in self.app.functions.values():
            for queue_trigger in fn.queue_triggers:
                sources.append(
                    QueueMapping(
                        fn,
                        queue_trigger,
                        self.created.queue_urls[queue_trigger.queue],
                        self.app.queues[queue_trigger.queue].arn,
                        clients.sqs,
                        invoker,
                        failures,
                        self.region,
                        hook,
                        concurrency=self._async_concurrency(fn),
                    )
                )
        sources += [
            Schedule(fn, trigger, invoker, failures, hook)
            for fn in self.app.functions.values()
            for trigger in fn.schedules
        ]
        return sources

    def _async_concurrency(self, fn: Function) -> int:
        # In this process a function runs one invocation at a time anyway; environments run up to its
        # concurrency. Used for S3 (async) events and for SQS mappings (with their MaximumConcurrency).
        if self._processes is None:
            return 1
        return self._processes.environments(fn).concurrency

    def _after_invoke(self, delivered: Delivered) -> None:
        if self.outbox is not None:
            for path in self.outbox.collect():
                log.info("mail written to %s", path)

    def stop(self) -> None:
        if self._delivery is not None:
            self._delivery.close()
        if self.outbox is not None:  # what the last invocations sent, before the endpoint goes
            try:
                self.outbox.collect()
            except (OSError, ValueError) as exc:
                log.warning("the outbox could not collect the last mail: %s", exc)
        if self._processes is not None:
            self._processes.stop()
            self._processes = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        restore_environment(self._saved_env, os.environ)
        self._saved_env = {}
        if self.app is not None and not self.environments:  # nothing cached may outlive this endpoint
            for package in self._packages():
                cold_start(package)

    def _packages(self) -> set[str]:
        assert self.app is not None
        return {fn.handler.split(".")[0] for fn in self.app.functions.values()}

    def __enter__(self) -> EmbeddedStack:
        if self.app is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # Using it -------------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """A boto3 client for the stack's endpoint (one per service: clients are thread-safe)."""
        assert self._session is not None, "start() the stack first"
        if service not in self._clients:
            self._clients[service] = self._session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]
        return self._clients[service]

    def on_invoke(self, listener: Callable[[Invoked], None]) -> Callable[[], None]:
        """Call `listener` after every invocation of any function (event sources and API alike);
        returns what removes it. Listeners run on the invoking thread: keep them short."""
        with self._listeners_lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._listeners_lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def invoke(self, fn: Function | str, event: Any) -> Any:
        """Invoke a function (or its logical id) with an event, through the same environments the
        event sources use: what an event source delivering it again would do. Raises its error."""
        assert self.app is not None and self._invoker is not None, "start() the stack first"
        function = self.app.functions[fn] if isinstance(fn, str) else fn
        return self._invoker.invoke(function, event)

    @property
    def delivery(self) -> Delivery:
        assert self._delivery is not None, "start() the stack first"
        return self._delivery

    def drain(self, timeout: float = 30.0, settle: float | None = None) -> int:
        """Deliver every pending event. On moto one quiet pass suffices; other endpoints settle 1 s."""
        if settle is None:
            settle = 0.0 if self._is_moto else 1.0
        return self.delivery.drain(timeout=timeout, settle=settle)

    def start_background_delivery(self, interval: float = 0.2) -> None:
        self.delivery.start_background(interval)

    def api_invoke(
        self,
        method: str,
        path: str,
        body: bytes | str | dict | list | None = None,
        headers: dict[str, str] | list[tuple[str, str]] | None = None,
        *,
        source_ip: str = "127.0.0.1",
    ) -> HttpResponse:
        """An HTTP request through the HttpApi routes to the function behind the matching route."""
        assert self._gateway, "start() the stack first"
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        if isinstance(body, dict | list):
            body = json.dumps(body)
            if not any(name.lower() == "content-type" for name, _ in pairs):
                pairs.append(("content-type", "application/json"))
        raw = body.encode("utf-8") if isinstance(body, str) else body
        return self._gateway.handle(method, path, raw, pairs, source_ip=source_ip)
