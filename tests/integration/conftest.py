"""The whole pipeline on the local stack: the template's resources on an endpoint, each function in its own
execution environments (processes with only its template Environment), as on Lambda.

Nothing here patches the stack or the functions: a test observes invocations through the stack's
`on_invoke`, delivers events again through `stack.invoke` (the same environments), and changes how the
functions behave only through configuration (`pipeline_config`: template parameters, and the operator's
environment the stack reads provider keys from) or through servers they talk to (tests/fixtures/hf_standin.py).

One suite, several backends. Every test that takes `pipeline` runs on each selected backend:
`moto` (moto's server, started in-process) always, `localstack` when chosen with `--backend localstack`
or `REIMAGINE_BACKENDS=moto,localstack`. A chosen LocalStack that does not answer fails the tests: a
lane that was asked for is never skipped. Tests marked `localstack` run on LocalStack only, and are
deselected when it is not chosen.
"""

from __future__ import annotations

import email
import email.policy
import io
import json
import os
import re
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

from reimagine_emulator.api_events import HttpResponse
from reimagine_emulator.delivery import Schedule
from reimagine_emulator.outbox import list_outbox
from reimagine_emulator.stack import EmbeddedStack, Invoked
from reimagine_tools.template import DEFAULT_STACK, Application, Function

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_PHOTO = ROOT / "infra" / "reimagine_emulator" / "assets" / "sample.jpg"

BACKENDS = ("moto", "localstack")
DEFAULT_LOCALSTACK_URL = "http://127.0.0.1:4566"
# What the pipeline uses on LocalStack; each must report "running" or "available" in its health.
LOCALSTACK_SERVICES = ("s3", "dynamodb", "dynamodbstreams", "sqs", "ses", "sts")
_BACKEND_OF = pytest.StashKey[dict[str, str]]()


def selected_backends(config: pytest.Config) -> list[str]:
    """moto, plus what `--backend` (or else $REIMAGINE_BACKENDS) names; in a fixed order."""
    given = config.getoption("--backend") or [os.environ.get("REIMAGINE_BACKENDS", "")]
    names = {name.strip().lower() for value in given for name in value.split(",") if name.strip()}
    unknown = names - set(BACKENDS)
    if unknown:
        raise pytest.UsageError(f"unknown backend(s) {', '.join(sorted(unknown))}; known: {', '.join(BACKENDS)}")
    return [backend for backend in BACKENDS if backend == "moto" or backend in names]


def localstack_url(config: pytest.Config) -> str:
    url = config.getoption("--localstack-url") or os.environ.get("REIMAGINE_LOCALSTACK_URL") or DEFAULT_LOCALSTACK_URL
    return str(url).rstrip("/")


def require_localstack(url: str) -> None:
    """Fail (never skip) unless LocalStack answers at `url` with the services the pipeline needs."""
    how = (
        "start it with `../shared/localstack/start` (or `localstack start -d` with Docker), "
        "or leave localstack out of --backend / REIMAGINE_BACKENDS"
    )
    services: dict[str, str] = {}
    problem = None
    try:
        with urllib.request.urlopen(f"{url}/_localstack/health", timeout=10) as response:
            services = json.load(response).get("services", {})
    except (OSError, ValueError) as exc:
        problem = str(exc)
    if problem is not None:  # failed outside the `except`, so the message is not buried under a chain
        pytest.fail(f"the localstack backend was selected but {url} does not answer ({problem}); {how}", pytrace=False)
    missing = [s for s in LOCALSTACK_SERVICES if services.get(s) not in ("running", "available")]
    if missing:
        pytest.fail(f"LocalStack at {url} lacks {', '.join(missing)} (health: {services}); {how}", pytrace=False)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "pipeline" not in metafunc.fixturenames:
        return
    backends = selected_backends(metafunc.config)
    if metafunc.definition.get_closest_marker("localstack"):
        backends = [b for b in backends if b == "localstack"]
    # An empty list (a LocalStack-only test, LocalStack not chosen) is deselected below, not skipped.
    metafunc.parametrize("pipeline", backends, indirect=True, scope="module")


@pytest.hookimpl(tryfirst=True)  # before `-m` filtering, so `-m "not localstack"` sees the marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    backend_of = config.stash.setdefault(_BACKEND_OF, {})
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "pipeline" not in callspec.params:
            kept.append(item)
            continue
        backend = callspec.params["pipeline"]
        if backend not in BACKENDS:  # the empty parameter set
            dropped.append(item)
            continue
        backend_of[item.nodeid] = backend
        if backend == "localstack":
            item.add_marker(pytest.mark.localstack)
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


_WORST_FIRST = ("error", "failed", "xpassed", "skipped", "xfailed", "passed")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """How many integration tests ran on each backend, and how they ended."""
    backend_of = config.stash.get(_BACKEND_OF, {})
    outcome_of: dict[str, str] = {}
    for outcome in _WORST_FIRST:
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            if nodeid in backend_of and nodeid not in outcome_of:
                outcome_of[nodeid] = outcome
    if not backend_of:
        return
    terminalreporter.section("integration tests per backend")
    for backend in BACKENDS:
        ran = [outcome for nodeid, outcome in outcome_of.items() if backend_of[nodeid] == backend]
        selected = sum(1 for b in backend_of.values() if b == backend)
        if not selected:
            continue
        tally = ", ".join(f"{ran.count(o)} {o}" for o in reversed(_WORST_FIRST) if ran.count(o))
        terminalreporter.write_line(f"{backend}: {len(ran)} run ({tally or 'none'})")


@dataclass
class Recorder:
    """Every (function, event) the stack invoked (its `on_invoke`), so a test can deliver them all again."""

    calls: list[tuple[Function, Any]] = field(default_factory=list)

    def __call__(self, invoked: Invoked) -> None:
        self.calls.append((invoked.function, invoked.event))

    def of(self, logical_id: str) -> list[Any]:
        return [event for fn, event in self.calls if fn.logical_id == logical_id]


@dataclass
class Pipeline:
    stack: EmbeddedStack
    outbox: Path
    recorder: Recorder
    backend: str = "moto"

    def create(self, email: str, content_type: str, size: int | None = None) -> dict:
        body: dict[str, Any] = {"email": email, "content_type": content_type}
        if size is not None:
            body["size"] = size
        response = self.stack.api_invoke("POST", "/requests", body)
        assert response.status == 201, response.body
        return response.json()

    def upload(self, created: dict, data: bytes) -> requests.Response:
        form = created["upload"]
        return requests.post(form["url"], data=form["fields"], files={"file": ("upload", data)}, timeout=30)

    def submit(self, data: bytes, content_type: str, email: str = "jane.doe@example.com") -> str:
        """Create, upload and deliver everything; a request held for its address's confirmation is
        confirmed through the outbox, as the address's reader would (ConfirmAddresses=true modules)."""
        created = self.create(email, content_type, len(data))
        assert self.upload(created, data).status_code == 204
        self.stack.drain()
        if self.status(created["id"])["status"] == "AWAITING_CONFIRMATION":
            assert self.confirm(email).status == 200
        return created["id"]

    def confirmation_mails(self, address: str) -> list:
        """The confirmation mail sent to `address` by this stack, newest first."""
        return [m for m in list_outbox(self.outbox) if m.to == address and m.subject.startswith("Confirm your address")]

    def confirm(self, address: str, *, method: str = "POST") -> HttpResponse:
        """Open the newest confirmation mail to `address` and press its button (POST; GET only looks),
        then deliver what that set moving."""
        (newest, *_) = self.confirmation_mails(address)
        response = self.stack.api_invoke(
            method, urlsplit(confirmation_link(newest.file)).path, headers=FORM if method == "POST" else None
        )
        self.stack.drain()
        return response

    def status(self, request_id: str) -> dict:
        response = self.stack.api_invoke("GET", f"/requests/{request_id}")
        assert response.status == 200, response.body
        return response.json()

    @property
    def app(self) -> Application:
        assert self.stack.app is not None, "the stack is started"
        return self.stack.app

    def result_keys(self) -> list[str]:
        bucket = self.app.functions["GenerateFunction"].environment["RESULTS_BUCKET"]
        listed = self.stack.client("s3").list_objects_v2(Bucket=bucket)
        return [o["Key"] for o in listed.get("Contents", [])]

    def mail_to(self, address: str) -> list:
        """The mail to `address` about this stack's own requests: a LocalStack shared by several runs
        shows every run's mail, and runs use the same addresses."""
        return [m for m in list_outbox(self.outbox) if m.to == address and self._about_our_request(m.file)]

    def _about_our_request(self, eml: Path) -> bool:
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        found = re.search(r"Request id: ([0-9a-f-]{36})", body.get_content() if body else "")
        if found is None:
            return False
        table = self.app.tables["RequestsTable"].name
        item = self.stack.client("dynamodb").get_item(TableName=table, Key={"id": {"S": found[1]}})
        return "Item" in item

    def sweep(self) -> None:
        """Run the sweeper now, as its schedule would, and deliver what it set moving (no waiting minutes)."""
        (schedule,) = [
            s for s in self.stack.delivery.sources if isinstance(s, Schedule) and s.fn.logical_id == "SweeperFunction"
        ]
        schedule.fire()
        self.stack.drain()

    def age(self, request_id: str, seconds: int) -> None:
        """Move a request's `updated_at` back, as if that long had passed since its last transition."""
        table = self.app.functions["SweeperFunction"].environment["TABLE_NAME"]
        record = self.stack.client("dynamodb").get_item(TableName=table, Key={"id": {"S": request_id}})["Item"]
        then = datetime.fromisoformat(record["updated_at"]["S"]) - timedelta(seconds=seconds)
        self.stack.client("dynamodb").update_item(
            TableName=table,
            Key={"id": {"S": request_id}},
            UpdateExpression="SET updated_at = :then",
            ExpressionAttributeValues={":then": {"S": then.isoformat(timespec="milliseconds").replace("+00:00", "Z")}},
        )
        self.stack.drain()

    def redeliver_everything(self) -> int:
        """Invoke every function again with every event it already had, as at-least-once delivery may."""
        calls = list(self.recorder.calls)
        for fn, event in calls:
            self.stack.invoke(fn, event)
        self.stack.drain()
        return len(calls)


FORM = {"content-type": "application/x-www-form-urlencoded"}


def confirmation_link(eml: Path) -> str:
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    found = re.search(r"https?://\S+/confirm/\S+", body.get_content() if body else "")
    assert found, f"no confirmation link in {eml}"
    return found[0]


@dataclass(frozen=True)
class PipelineConfig:
    """How a module's stack is configured: template parameter overrides, and the operator's environment
    the stack reads at start (provider keys such as HF_TOKEN, stored as the SecureStrings the template names)."""

    parameters: dict[str, str] = field(default_factory=dict)
    environ: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def pipeline_config() -> PipelineConfig:
    """The template's defaults (the offline provider); a test module overrides this fixture to change them.

    Except one: the stack runs with ConfirmAddresses=false (today's flow) unless a module's parameters
    say "true". Most modules are about something else (bad uploads, faults, queues, re-drives) and count
    result and failure mail to fresh addresses; test_confirmation.py runs the template's default, and
    modules that keep it have `Pipeline.submit` confirm through the outbox as a reader would.
    """
    return PipelineConfig()


@pytest.fixture(scope="module")
def pipeline(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pipeline_config: PipelineConfig
) -> Iterator[Pipeline]:
    backend: str = request.param
    endpoint_url: str | None = None  # moto: the stack starts its own server
    stack_name = DEFAULT_STACK
    if backend == "localstack":
        endpoint_url = localstack_url(request.config)
        require_localstack(endpoint_url)
        # A LocalStack outlives test runs: fresh names give every run its own buckets, table and stream.
        stack_name = f"reimagine-it-{uuid.uuid4().hex[:8]}"
    outbox = tmp_path_factory.mktemp(f"outbox-{backend}")
    recorder = Recorder()
    stack = EmbeddedStack(
        ROOT / "template.yaml",
        stack_name=stack_name,
        parameters={"ConfirmAddresses": "false", **pipeline_config.parameters},
        outbox_dir=outbox,
        environ={**os.environ, **pipeline_config.environ},
    )
    with stack.start(endpoint_url):
        stack.on_invoke(recorder)
        yield Pipeline(stack, outbox, recorder, backend)


def image_bytes(fmt: str, size: tuple[int, int] = (320, 240), **save: Any) -> bytes:
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()
