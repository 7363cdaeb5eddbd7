"""The local invoker runs one invocation per function at a time, as one Lambda container does."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reimagine_emulator.invoke import Invoker, Throttled, cold_start
from reimagine_tools.template import Function
from tests.fixtures import fake_handlers


def _function(logical_id: str, handler: str = "remembers_event") -> Function:
    return Function(
        logical_id=logical_id,
        name=f"stack-{logical_id}",
        handler=f"tests.fixtures.fake_handlers.{handler}",
        code_uri=None,
        timeout=30,
        memory_size=128,
        environment={},
    )


def test_concurrent_invocations_of_one_function_never_see_each_others_event():
    invoker = Invoker(Path("."))
    fn = _function("Api")
    fake_handlers.OVERLAPS.clear()
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda n: invoker.invoke(fn, {"n": n}), range(200)))
    assert answers == [{"echo": n} for n in range(200)]
    assert fake_handlers.OVERLAPS["stack-Api"] == 0


def test_different_functions_still_run_side_by_side():
    invoker = Invoker(Path("."))
    functions = [_function("First", "meets_partner"), _function("Second", "meets_partner")]
    fake_handlers.PARTNER.reset()
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = sorted(a["met"] for a in pool.map(lambda fn: invoker.invoke(fn, {}), functions))
    assert answers == ["stack-First", "stack-Second"]


def test_a_cold_start_forgets_powertools_parameter_providers():
    # A provider built earlier in the process holds a boto3 client for an endpoint that may be gone
    # (another test's mock, a stopped stack); a new container would build its own.
    from aws_lambda_powertools.utilities.parameters import base

    base.DEFAULT_PROVIDERS["ssm"] = object()  # type: ignore[assignment]
    cold_start("reimagine")
    assert "ssm" not in base.DEFAULT_PROVIDERS


def test_a_caller_that_may_not_wait_is_throttled_while_the_container_is_busy():
    # Given one invocation inside the function's one in-process container
    invoker = Invoker(Path("."))
    fn = _function("Busy", "meets_partner")
    fake_handlers.PARTNER.reset()
    with ThreadPoolExecutor(max_workers=1) as pool:
        inside = pool.submit(invoker.invoke, fn, {})
        deadline = time.monotonic() + 5
        while fake_handlers.PARTNER.n_waiting < 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # until the first invocation is in its handler
        # When the async queue tries another without waiting, Then it is throttled, not queued behind it
        with pytest.raises(Throttled):
            invoker.invoke(fn, {}, wait=False)
        fake_handlers.PARTNER.wait()  # let the first one finish
        assert inside.result(timeout=5) == {"met": "stack-Busy"}
