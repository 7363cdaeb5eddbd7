"""Lambda's async queue, locally: S3 notifications and schedules wait while the function is throttled
(no free environment), which is not an attempt, and an event older than its function's
MaximumEventAgeInSeconds goes to the on-failure destination as EventAgeExceeded instead of being invoked.

The clock is injected: `sleep` moves it, so a throttle's waiting ages the event without any real wait.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from reimagine_emulator.delivery import FailureDestinations, S3Notifications, Schedule
from reimagine_emulator.invoke import Throttled
from reimagine_tools.template import Function, InvokeConfig, S3Trigger, ScheduleTrigger, read_application
from tests.fixtures.clocks import EpochClock
from tests.fixtures.fake_sqs import FakeSqs
from tests.fixtures.template import TEMPLATE

FAILURES = "arn:aws:sqs:us-east-1:123456789012:failures"
NOW = 1_800_000_000.0  # epoch seconds


class ScriptedInvoker:
    """Answers each try with the next of `script`: "throttle" (no free environment), "error" or "ok";
    `clock_per_call` seconds pass during each invocation that runs."""

    def __init__(self, script: list[str], clock: EpochClock, clock_per_call: float = 0.0) -> None:
        self.script = list(script)
        self.clock = clock
        self.clock_per_call = clock_per_call
        self.invocations = 0
        self.throttles = 0

    def invoke(self, fn: Function, event: Any, *, wait: bool = True) -> Any:
        assert not wait, "the async queue never blocks on a busy function: it retries the throttle itself"
        step = self.script.pop(0) if self.script else "ok"
        if step == "throttle":
            self.throttles += 1
            raise Throttled(fn.logical_id)
        self.invocations += 1
        self.clock.now += self.clock_per_call
        if step == "error":
            raise RuntimeError("boom")
        return None


def function(retries: int = 2, max_age: int = 21600) -> Function:
    return Function(
        logical_id="CaptionFunction",
        name="stack-caption",
        handler="reimagine.handlers.caption.handler",
        code_uri=None,
        timeout=30,
        memory_size=1024,
        environment={},
        invoke_config=InvokeConfig(retries, FAILURES, max_age),
        arn="arn:aws:lambda:us-east-1:123456789012:function:stack-caption",
    )


def s3_event(event_time: float) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(event_time, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"Records": [{"eventTime": stamp, "s3": {"object": {"key": "uploads/abc"}}}]}


@pytest.fixture
def clock() -> EpochClock:
    return EpochClock(NOW)


def notifications(fn: Function, sqs: FakeSqs, invoker: ScriptedInvoker, clock: EpochClock) -> S3Notifications:
    return S3Notifications(
        fn,
        S3Trigger("Upload", "UploadsBucket", ("s3:ObjectCreated:*",)),
        "https://sqs.example/notifications",
        sqs,  # type: ignore[arg-type]
        invoker,  # type: ignore[arg-type]
        FailureDestinations(sqs),  # type: ignore[arg-type]
        wall_clock=clock,
        sleep=clock.sleep,
    )


def test_the_template_gives_each_async_function_its_maximum_event_age():
    app = read_application(TEMPLATE)
    ages = {fn.logical_id: fn.invoke_config.maximum_event_age_seconds for fn in app.functions.values()}
    assert (ages["CaptionFunction"], ages["SweeperFunction"]) == (21600, 300)


def test_an_event_queued_longer_than_its_maximum_age_goes_to_the_on_failure_queue_uninvoked(clock: EpochClock):
    # Given an S3 event that S3 queued 400 s ago, for a function that keeps events 300 s
    sqs = FakeSqs(s3_event(NOW - 400), sent_at=NOW - 400)
    invoker = ScriptedInvoker([], clock)
    # When the async queue delivers it
    notifications(function(max_age=300), sqs, invoker, clock).poll()
    # Then it is never invoked, and the on-failure record says why, as Lambda's does
    assert invoker.invocations == 0
    [record] = sqs.sent
    assert (record["requestContext"]["condition"], record["requestContext"]["approximateInvokeCount"]) == (
        "EventAgeExceeded",
        0,
    )
    assert record["requestPayload"] == s3_event(NOW - 400) and "responseContext" not in record
    assert sqs.deleted == ["r-1"]


def test_without_a_sent_timestamp_the_s3_records_event_time_gives_the_age(clock: EpochClock):
    sqs = FakeSqs(s3_event(NOW - 400))
    notifications(function(max_age=300), sqs, ScriptedInvoker([], clock), clock).poll()
    assert [r["requestContext"]["condition"] for r in sqs.sent] == ["EventAgeExceeded"]


def test_a_throttled_event_waits_and_the_wait_is_not_an_attempt(clock: EpochClock):
    # Given a function with no retries whose environments are all busy for three tries
    sqs = FakeSqs(s3_event(NOW), sent_at=NOW)
    invoker = ScriptedInvoker(["throttle", "throttle", "throttle", "ok"], clock)
    # When the event is delivered
    notifications(function(retries=0), sqs, invoker, clock).poll()
    # Then it waited (with growing pauses) and then ran once, successfully, with nothing sent to on-failure
    assert (invoker.throttles, invoker.invocations, sqs.sent) == (3, 1, [])
    assert clock.slept == [0.05, 0.1, 0.2]


def test_an_event_throttled_past_its_maximum_age_is_event_age_exceeded(clock: EpochClock):
    # Given a function that keeps events 2 s and is throttled for good
    sqs = FakeSqs(s3_event(NOW), sent_at=NOW)
    invoker = ScriptedInvoker(["throttle"] * 100, clock)
    # When the event is delivered
    notifications(function(max_age=2), sqs, invoker, clock).poll()
    # Then it was never invoked and went to on-failure once it was older than 2 s
    assert invoker.invocations == 0
    assert [(r["requestContext"]["condition"], r["requestContext"]["approximateInvokeCount"]) for r in sqs.sent] == [
        ("EventAgeExceeded", 0)
    ]
    assert 2 < clock.now - NOW <= 3


def test_retries_stop_when_the_event_is_too_old_for_another(clock: EpochClock):
    # Given a failing function with 2 retries, 100 s an attempt, and events kept 150 s
    sqs = FakeSqs(s3_event(NOW), sent_at=NOW)
    invoker = ScriptedInvoker(["error"] * 3, clock, clock_per_call=100)
    # When the event is delivered
    notifications(function(retries=2, max_age=150), sqs, invoker, clock).poll()
    # Then the third attempt never happens: two invocations, then EventAgeExceeded with the last error
    assert invoker.invocations == 2
    [record] = sqs.sent
    assert (record["requestContext"]["condition"], record["requestContext"]["approximateInvokeCount"]) == (
        "EventAgeExceeded",
        2,
    )
    assert record["responsePayload"] == {"errorMessage": "boom", "errorType": "RuntimeError"}


def test_a_failing_event_young_enough_exhausts_its_retries(clock: EpochClock):
    sqs = FakeSqs(s3_event(NOW), sent_at=NOW)
    invoker = ScriptedInvoker(["error"] * 3, clock, clock_per_call=1)
    notifications(function(retries=2), sqs, invoker, clock).poll()
    assert invoker.invocations == 3
    assert [(r["requestContext"]["condition"], r["requestContext"]["approximateInvokeCount"]) for r in sqs.sent] == [
        ("RetriesExhausted", 3)
    ]


def test_a_scheduled_run_throttled_past_its_maximum_age_is_dropped_to_on_failure(clock: EpochClock):
    # Given the sweeper's schedule (events kept 300 s) while its one environment stays busy
    sqs = FakeSqs()
    invoker = ScriptedInvoker(["throttle"] * 1000, clock)
    source = Schedule(
        function(retries=0, max_age=300),
        ScheduleTrigger("Sweep", "rate(5 minutes)", True, "stack-sweep"),
        invoker,  # type: ignore[arg-type]
        FailureDestinations(sqs),  # type: ignore[arg-type]
        wall_clock=clock,
        sleep=clock.sleep,
    )
    # When a run is fired
    source.fire()
    # Then it waited up to the age limit and was never invoked
    assert invoker.invocations == 0
    assert [r["requestContext"]["condition"] for r in sqs.sent] == ["EventAgeExceeded"]
    assert 300 < clock.now - NOW <= 301
