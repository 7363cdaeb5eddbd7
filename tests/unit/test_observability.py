"""Cold starts and step work are observable in production: ColdStart metrics, X-Ray subsegments per step."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start

from reimagine import clients, observability
from reimagine.model_call import Deadline
from reimagine.observability import metrics, tracer
from reimagine.providers.offline import OfflineCaptioner, OfflineGenerator
from reimagine.request_body import CreateRequestBody
from reimagine.steps import api as api_steps
from reimagine.steps.caption import caption_upload
from reimagine.steps.generate import generate_result
from reimagine.steps.notify import notify_user
from tests.fixtures import images
from tests.fixtures.events import load_event
from tests.fixtures.lambda_context import lambda_context

# Each function's first event, from the recorded samples: one that succeeds without prior state.
FIRST_EVENTS = {
    "ApiFunction": ("api", "api_get_request.json"),
    "CaptionFunction": ("caption", "localstack_s3_test_event.json"),
    "GenerateFunction": ("generate", "sqs_generate_captioned.json"),
    "NotifyFunction": ("notify", "dynamodb_stream_completed.json"),
    "SweeperFunction": ("sweeper", "schedule_sweeper.json"),
    "MailEventsFunction": ("mail_events", "eventbridge_ses_complaint.json"),
}


@pytest.fixture
def cold_start_metrics(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A fresh container (Powertools' cold-start flag set); the function names ColdStart is emitted for."""
    emitted: list[str] = []
    monkeypatch.setattr(cold_start, "is_cold_start", True)
    record = lambda context: emitted.append(context.function_name)  # noqa: E731
    monkeypatch.setattr(metrics.provider, "add_cold_start_metric", record)
    return emitted


def _first_two_events(function: str, *, metrics_enabled: bool) -> None:
    """Load the handler as a container would with metrics enabled or not, and give it two events."""
    module_name, sample = FIRST_EVENTS[function]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(observability, "CAPTURE_COLD_START", metrics_enabled)
        module = importlib.reload(import_module(f"reimagine.handlers.{module_name}"))
        event = load_event(sample)
        for _ in range(2):
            module.handler(event, lambda_context(function, 60, 256))
    importlib.reload(module)  # back to the test environment's handler (metrics disabled)


@pytest.mark.parametrize("function", sorted(FIRST_EVENTS))
def test_each_function_emits_one_cold_start_metric(function: str, table, cold_start_metrics: list[str]) -> None:
    # Given a fresh container with metrics on, When its handler answers two events, Then ColdStart is emitted once
    _first_two_events(function, metrics_enabled=True)
    assert cold_start_metrics == [function]


def test_no_cold_start_metric_when_metrics_are_disabled(table, cold_start_metrics: list[str]) -> None:
    # Powertools would print it even so, into the local stack's output.
    _first_two_events("CaptionFunction", metrics_enabled=False)
    assert cold_start_metrics == []


@pytest.fixture
def subsegments(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the X-Ray subsegments the tracer opens (tracing itself stays disabled in tests)."""
    opened: list[str] = []
    real = tracer.provider.in_subsegment

    @contextmanager
    def recording(name: str, **kwargs: Any) -> Iterator[Any]:
        opened.append(name)
        with real(name=name, **kwargs) as subsegment:
            yield subsegment

    monkeypatch.setattr(tracer.provider, "in_subsegment", recording)
    return opened


def test_each_step_and_provider_call_is_a_subsegment(aws, subsegments: list[str]) -> None:
    # Given a request whose photo was uploaded
    body = CreateRequestBody(email="jane@example.com", content_type="image/png")
    request_id = api_steps.create_request(body, store=clients.store(), s3=clients.s3(), settings=aws).id
    clients.s3().put_object(Bucket=aws.uploads_bucket, Key=f"uploads/{request_id}", Body=images.png())
    steps = {"store": clients.store(), "s3": clients.s3(), "settings": aws}
    # When it is captioned, generated and notified
    caption_upload(request_id, **steps, captioner=OfflineCaptioner, deadline=Deadline.after(30))
    generate_result(request_id, **steps, generator=OfflineGenerator, deadline=Deadline.after(30))
    notify_user(request_id, **steps, ses=clients.ses())
    # Then each step, the image preparation and each provider call showed as its own subsegment
    assert subsegments == [
        "## reimagine.steps.caption.caption_upload",
        "## reimagine.imaging.prepare_for_model",
        "## reimagine.steps.caption._caption_with",
        "## reimagine.steps.generate.generate_result",
        "## reimagine.steps.generate._generate_with",
        "## reimagine.steps.notify.notify_user",
    ]
