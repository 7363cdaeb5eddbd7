"""Generation through its work queue (GeneratePipe -> GenerateQueue -> GenerateFunction) on each backend:
a burst gets exactly one result and one email per request, and a message Generate fails on every time
is parked in FailureQueue by the queue's RedrivePolicy, from where `reimagine redrive` brings it to
COMPLETED once Generate works again."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from reimagine_emulator.outbox import list_outbox
from reimagine_emulator.stack import EmbeddedStack
from reimagine_tools.cli import main
from reimagine_tools.sam_options import EnvVars
from tests.fixtures.moto_server import moto_server
from tests.integration.conftest import (
    BACKENDS,
    ROOT,
    SAMPLE_PHOTO,
    Pipeline,
    localstack_url,
    require_localstack,
    selected_backends,
)

pytestmark = pytest.mark.integration

BURST = 12


def test_a_burst_through_the_queue_gets_one_result_and_one_email_per_request(pipeline: Pipeline) -> None:
    # Given a burst of uploads, all sent before any is delivered
    data = SAMPLE_PHOTO.read_bytes()
    tag = uuid.uuid4().hex[:6]
    addresses = [f"burst-{tag}-{i}@example.com" for i in range(BURST)]
    created = [pipeline.create(address, "image/jpeg", len(data)) for address in addresses]
    for request in created:
        assert pipeline.upload(request, data).status_code == 204
    # When every event is delivered (captions, the pipe, the queue, the emails)
    pipeline.stack.drain(timeout=120)
    # Then every request is COMPLETED with its one result object, and each address got one email
    ids = [request["id"] for request in created]
    assert Counter(pipeline.status(i)["status"] for i in ids) == Counter({"COMPLETED": BURST})
    results = set(pipeline.result_keys())
    assert all(f"results/{i}.png" in results for i in ids)
    mails = Counter(m.to for m in list_outbox(pipeline.outbox) if m.to in addresses)
    assert mails == Counter({a: 1 for a in addresses})
    # And nothing is left in the queue
    assert _visible(pipeline.stack, "GenerateQueue") == 0


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = selected_backends(metafunc.config)
        params = [pytest.param(b, marks=[pytest.mark.localstack] if b == "localstack" else []) for b in chosen]
        metafunc.parametrize("backend", params)


@pytest.fixture
def endpoint(backend: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """An endpoint two stacks can share one after the other: a moto server of this test, or LocalStack."""
    assert backend in BACKENDS
    if backend == "localstack":
        url = localstack_url(request.config)
        require_localstack(url)
        yield url
        return
    with moto_server() as url:
        yield url


def _visible(stack: EmbeddedStack, queue: str) -> int:
    assert stack.app
    sqs = stack.client("sqs")
    url = sqs.get_queue_url(QueueName=stack.app.queues[queue].name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _parked(stack: EmbeddedStack) -> list[dict]:
    assert stack.app
    sqs = stack.client("sqs")
    url = sqs.get_queue_url(QueueName=stack.app.queues["FailureQueue"].name)["QueueUrl"]
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in found]


# This test is about the queue, not about who gets mail: no confirmation step (as the `pipeline` fixture).
TODAYS_FLOW = {"ConfirmAddresses": "false"}


def test_a_message_generate_always_fails_is_parked_then_redriven_to_completed(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_name = f"reimagine-dlq-{uuid.uuid4().hex[:6]}"
    data = SAMPLE_PHOTO.read_bytes()
    # Given a deploy that broke GenerateFunction's configuration (a RESULT_SIZE its settings refuse), so
    # its environments fail to initialise and every delivery fails before the request is claimed
    broken = EmbeddedStack(
        ROOT / "template.yaml",
        stack_name=stack_name,
        parameters=TODAYS_FLOW,
        env_vars=EnvVars(per_function={"GenerateFunction": {"RESULT_SIZE": "0"}}),
        environments=True,
    )
    with broken.start(endpoint):
        created = broken.api_invoke(
            "POST", "/requests", {"email": "parked@example.com", "content_type": "image/jpeg", "size": len(data)}
        ).json()
        form = created["upload"]
        assert requests.post(form["url"], data=form["fields"], files={"file": ("p", data)}, timeout=30).ok
        # When everything is delivered
        broken.drain(timeout=180)
        # Then the message was received maxReceiveCount (4) times and parked by the queue, body intact
        (parked,) = _parked(broken)
        assert parked["dynamodb"]["Keys"] == {"id": {"S": created["id"]}}
        assert broken.api_invoke("GET", f"/requests/{created['id']}").json()["status"] == "CAPTIONED"
        assert _visible(broken, "GenerateQueue") == 0
    # When Generate works again (the same stack, redeployed) and the operator re-drives
    with EmbeddedStack(ROOT / "template.yaml", stack_name=stack_name, parameters=TODAYS_FLOW).start(
        endpoint
    ) as healthy:
        argv = ["redrive", "--endpoint-url", endpoint, "--stack", stack_name, "-t", str(ROOT / "template.yaml")]
        assert main([*argv, "--region", healthy.region]) == 0
        lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("{")]
        healthy.drain(timeout=60)
        # Then the parked message was understood and deleted, and the request went on to COMPLETED and its email
        (line,) = lines
        assert (
            f"queued stream record from GenerateQueue: {created['id']} CAPTIONED -> touched back to CAPTIONED" in line
        )
        assert line.endswith("[deleted]")
        record = healthy.api_invoke("GET", f"/requests/{created['id']}").json()
        assert record["status"] == "COMPLETED" and "notified_at" in record
        assert _parked(healthy) == []
