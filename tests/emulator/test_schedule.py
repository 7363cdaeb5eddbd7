"""Schedule events on the local stack: EventBridge's "Scheduled Event" at the template's rate."""

from __future__ import annotations

from pathlib import Path

import pytest

from reimagine_emulator.delivery import FailureDestinations, Schedule
from reimagine_emulator.invoke import Invoker
from reimagine_tools.template import Function, InvokeConfig, ScheduleTrigger, read_application
from tests.fixtures import fake_handlers
from tests.fixtures.clocks import EpochClock
from tests.fixtures.events import load_event
from tests.fixtures.fake_sqs import FakeSqs

ROOT = Path(__file__).resolve().parents[2]
ARN = "arn:aws:lambda:eu-west-1:123456789012:function:stack-Sweeper"
FAILURES = "arn:aws:sqs:eu-west-1:123456789012:stack-failures"


def schedule(expression: str = "rate(5 minutes)", enabled: bool = True, retries: int = 0):
    fake_handlers.CALLS.pop("on_schedule", None)
    fake_handlers.SCHEDULE_FAILS.clear()
    fn = Function(
        logical_id="Sweeper",
        name="stack-Sweeper",
        handler="tests.fixtures.fake_handlers.on_schedule",
        code_uri=None,
        timeout=60,
        memory_size=256,
        environment={},
        invoke_config=InvokeConfig(retries, FAILURES),
        arn=ARN,
    )
    clock, sqs = EpochClock(1000.0), FakeSqs()
    trigger = ScheduleTrigger("Sweep", expression, enabled, "stack-Sweeper-Sweep")
    source = Schedule(fn, trigger, Invoker(ROOT), FailureDestinations(sqs), clock=clock)  # type: ignore[arg-type]
    return source, clock, sqs


def calls() -> list[dict]:
    return fake_handlers.CALLS["on_schedule"]


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(2 hours)", 7200), ("rate(1 day)", 86400)],
)
def test_rate_expressions_give_their_period(expression, seconds):
    assert ScheduleTrigger("S", expression).period_seconds == seconds


@pytest.mark.parametrize("expression", ["cron(0/5 * * * ? *)", "rate(0 minutes)", "rate(5 fortnights)", "every 5m"])
def test_other_expressions_have_no_local_period(expression):
    assert ScheduleTrigger("S", expression).period_seconds is None


def test_first_run_is_one_period_after_start_then_every_period():
    source, clock, _ = schedule()
    assert source.poll() == 0
    clock.now += 299
    assert source.poll() == 0 and calls() == []
    clock.now += 1
    assert source.poll() == 1
    assert source.poll() == 0  # not again until the next period
    clock.now += 300
    assert source.poll() == 1
    assert len(calls()) == 2


def test_the_event_is_eventbridges_scheduled_event():
    # Given a 5-minute schedule, When 5 minutes pass
    source, clock, _ = schedule()
    clock.now += 300
    source.poll()
    # Then the function gets EventBridge's Scheduled Event, shaped as the documented sample
    [event] = calls()
    documented = load_event("schedule_sweeper.json")
    assert set(event) == set(documented)
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert (event["account"], event["region"]) == ("123456789012", "eu-west-1")
    assert event["resources"] == ["arn:aws:events:eu-west-1:123456789012:rule/stack-Sweeper-Sweep"]
    assert event["detail"] == {}


def test_firing_runs_at_once_and_leaves_the_period_alone():
    # Given a schedule not yet due
    source, clock, _ = schedule()
    clock.now += 100
    # When it is fired by hand
    source.fire()
    # Then it ran once now, and still runs when its period comes
    assert len(calls()) == 1 and calls()[0]["detail-type"] == "Scheduled Event"
    clock.now += 200
    assert source.poll() == 1 and len(calls()) == 2


def test_a_long_pause_fires_once_not_once_per_missed_period():
    source, clock, _ = schedule()
    clock.now += 300 * 10 + 1
    assert source.poll() == 1
    assert source.poll() == 0
    assert len(calls()) == 1


def test_a_failing_run_is_retried_per_invoke_config_then_recorded():
    source, clock, sqs = schedule(retries=1)
    fake_handlers.SCHEDULE_FAILS.set()
    clock.now += 300
    source.poll()
    assert len(calls()) == 2
    [record] = sqs.sent
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestPayload"]["detail-type"] == "Scheduled Event"
    assert record["responsePayload"]["errorMessage"] == "sweep failed"


@pytest.mark.parametrize(("expression", "enabled"), [("cron(0/5 * * * ? *)", True), ("rate(5 minutes)", False)])
def test_cron_and_disabled_schedules_never_run(expression, enabled):
    source, clock, _ = schedule(expression, enabled)
    clock.now += 86400 * 2
    assert source.poll() == 0
    assert calls() == []


def test_the_sweeper_runs_every_five_minutes_per_the_template():
    app = read_application(ROOT / "template.yaml")
    [trigger] = app.functions["SweeperFunction"].schedules
    assert trigger.period_seconds == 300 and trigger.enabled
    assert all(not fn.schedules for name, fn in app.functions.items() if name != "SweeperFunction")


@pytest.mark.parametrize(
    ("minutes", "expression", "seconds"),
    [("1", "rate(1 minute)", 60), ("2", "rate(2 minutes)", 120), ("30", "rate(30 minutes)", 1800)],
)
def test_the_local_stack_runs_the_sweeper_at_the_sweep_every_minutes_parameter(minutes, expression, seconds):
    # Given SweepEveryMinutes overridden as `--parameter-overrides` would
    app = read_application(ROOT / "template.yaml", parameters={"SweepEveryMinutes": minutes})
    # Then the schedule is that rate, in EventBridge's own spelling (singular for one), and runs at it
    [trigger] = app.functions["SweeperFunction"].schedules
    assert (trigger.expression, trigger.period_seconds) == (expression, seconds)
