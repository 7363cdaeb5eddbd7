"""Execution environments as Lambda makes them: AWS's Runtime Interface Client in a process per environment.

Each test reads a small template, so what an environment holds is what the template says, and runs the
handlers in tests/fixtures/runtime_handlers.py in real processes through the local Runtime API.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator

import pytest

from reimagine_emulator.environments import INIT_LIMIT_SECONDS, FunctionError, ProcessInvoker, Throttled, level_of
from reimagine_tools.template import Application, read_application
from tests.fixtures.environment_faults import kill_and_wait, runtimes_pick_up_late
from tests.fixtures.template import ROOT

TEMPLATE = f"""
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.11
    CodeUri: {ROOT}
    MemorySize: 256
    Timeout: 5
    Environment:
      Variables:
        SHARED: from-globals
Resources:
  Declares:
    Type: AWS::Serverless::Function
    Properties:
      Handler: tests.fixtures.runtime_handlers.greet
      Environment:
        Variables:
          GREETING: hello
  Lacks:
    Type: AWS::Serverless::Function
    Properties:
      Handler: tests.fixtures.runtime_handlers.greet
  Describe:
    Type: AWS::Serverless::Function
    Properties:
      Handler: tests.fixtures.runtime_handlers.describe
      MemorySize: 512
      ReservedConcurrentExecutions: 1
  Slow:
    Type: AWS::Serverless::Function
    Properties:
      Handler: tests.fixtures.runtime_handlers.sleep
      Timeout: 1
  Broken:
    Type: AWS::Serverless::Function
    Properties:
      Handler: tests.fixtures.no_such_module.handler
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Application:
    path = tmp_path_factory.mktemp("environments") / "template.yaml"
    path.write_text(TEMPLATE)
    return read_application(path, stack_name="envtest")


@pytest.fixture
def invoker(app: Application) -> Iterator[ProcessInvoker]:
    invoker = ProcessInvoker(app.template_dir, region="eu-west-1", extra_env={"AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    yield invoker
    invoker.stop()


def test_a_function_sees_the_variable_its_own_section_declares(app: Application, invoker: ProcessInvoker) -> None:
    assert invoker.invoke(app.functions["Declares"], {})["greeting"] == "hello"


def test_a_function_missing_a_variable_in_its_own_section_fails_as_on_aws(
    app: Application, invoker: ProcessInvoker
) -> None:
    # Given another function declares GREETING and this one does not
    invoker.invoke(app.functions["Declares"], {})
    # When this one runs, Then its handler's KeyError is the invocation's error
    with pytest.raises(FunctionError) as failed:
        invoker.invoke(app.functions["Lacks"], {})
    assert (failed.value.payload["errorType"], failed.value.payload["errorMessage"]) == ("KeyError", "'GREETING'")


def test_an_environment_holds_its_template_environment_and_what_lambda_sets(
    app: Application, invoker: ProcessInvoker
) -> None:
    fn = app.functions["Describe"]
    seen = invoker.invoke(fn, {"hello": "world"})
    env = seen["env"]
    assert seen["event"] == {"hello": "world"}
    assert (seen["function_name"], seen["memory_limit_in_mb"]) == (fn.name, 512)
    assert 0 < seen["remaining_ms"] <= 5000
    names = ("SHARED", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_REGION")
    assert {k: env[k] for k in names} == {
        "SHARED": "from-globals",
        "AWS_LAMBDA_FUNCTION_NAME": fn.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "eu-west-1",
    }
    assert env["_HANDLER"] == "tests.fixtures.runtime_handlers.describe"
    # Nothing of the test process's own environment gets in (pytest sets this one in it).
    assert "PYTEST_CURRENT_TEST" not in env


def test_an_environment_is_reused_by_the_next_invocation(app: Application, invoker: ProcessInvoker) -> None:
    fn = app.functions["Describe"]
    first, second = invoker.invoke(fn, {}), invoker.invoke(fn, {})
    assert (second["pid"], second["started_at"]) == (first["pid"], first["started_at"])
    assert invoker.environments(fn).created == 1


def test_environments_are_created_on_demand_up_to_the_functions_concurrency(
    app: Application, invoker: ProcessInvoker
) -> None:
    # Given a function with no reserved concurrency, and the local default of 4
    fn = app.functions["Slow"]
    pids: list[int] = []

    def run() -> None:
        pids.append(invoker.invoke(fn, {"seconds": 0.5})["pid"])

    threads = [threading.Thread(target=run) for _ in range(2)]
    # When two invocations run at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then each had its own environment
    assert (len(set(pids)), invoker.environments(fn).created) == (2, 2)


def test_an_invocation_beyond_reserved_concurrency_is_throttled_when_it_may_not_wait(
    app: Application, invoker: ProcessInvoker
) -> None:
    pool = invoker.environments(app.functions["Describe"])  # ReservedConcurrentExecutions: 1
    busy = pool._acquire(wait=True)
    try:
        with pytest.raises(Throttled):
            pool.invoke({}, wait=False)
    finally:
        pool._release(busy)


def test_an_invocation_past_its_timeout_is_ended_and_reported_as_lambda_reports_it(
    app: Application, invoker: ProcessInvoker, caplog: pytest.LogCaptureFixture
) -> None:
    fn = app.functions["Slow"]  # Timeout: 1
    first = invoker.invoke(fn, {"seconds": 0})
    # When an invocation sleeps past the function's Timeout
    with caplog.at_level(logging.INFO, logger="reimagine_emulator"), pytest.raises(FunctionError) as failed:
        invoker.invoke(fn, {"seconds": 30})
    # Then it fails with Lambda's message, and the next invocation gets a new environment
    assert re.fullmatch(r"\S+Z [0-9a-f-]{36} Task timed out after 1\.00 seconds", failed.value.payload["errorMessage"])
    assert invoker.invoke(fn, {"seconds": 0})["pid"] != first["pid"]
    request_id = failed.value.payload["errorMessage"].split()[1]
    (report,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"REPORT RequestId: {request_id}")]
    assert re.fullmatch(r"REPORT RequestId: \S+\tDuration: 10\d\d\.\d\d ms\tBilled Duration: \d+ ms.*", report)


def test_a_warm_environment_older_than_its_init_limit_answers_an_event_its_runtime_takes_late(
    app: Application, invoker: ProcessInvoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a warm environment started longer ago than its init limit plus its Timeout (5 s)
    fn = app.functions["Declares"]
    first = invoker.invoke(fn, {})
    (environment,) = invoker.environments(fn)._idle
    monkeypatch.setattr(environment, "started", environment.started - INIT_LIMIT_SECONDS - fn.timeout - 60)
    # And a runtime that takes its next event 0.2 s after it is submitted, as on a busy machine
    runtimes_pick_up_late(monkeypatch, 0.2)
    # When a quick event comes, Then the same environment answers it: its Timeout runs from the pickup
    assert invoker.invoke(fn, {})["pid"] == first["pid"]


def test_an_event_a_warm_runtime_never_takes_fails_a_timeout_after_it_was_submitted(
    app: Application, invoker: ProcessInvoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a warm environment of a function with Timeout 1 s, whose runtime takes events a minute late
    fn = app.functions["Slow"]
    invoker.invoke(fn, {"seconds": 0})
    runtimes_pick_up_late(monkeypatch, 60)
    # When an event comes, Then it fails as Lambda's timeout, not waiting for the runtime
    with pytest.raises(FunctionError) as failed:
        invoker.invoke(fn, {"seconds": 0})
    assert re.fullmatch(r"\S+Z [0-9a-f-]{36} Task timed out after 1\.00 seconds", failed.value.payload["errorMessage"])


def test_an_idle_environment_that_died_is_replaced_for_the_next_invocation(
    app: Application, invoker: ProcessInvoker
) -> None:
    # Given the one environment a function may have (ReservedConcurrentExecutions: 1), killed while idle
    fn = app.functions["Describe"]
    first = invoker.invoke(fn, {})
    kill_and_wait(first["pid"])
    # When the next event comes, Then a new environment answers it
    assert invoker.invoke(fn, {})["pid"] != first["pid"]


def test_the_first_invocation_of_an_environment_reports_its_init_duration(
    app: Application, invoker: ProcessInvoker, caplog: pytest.LogCaptureFixture
) -> None:
    fn = app.functions["Declares"]
    with caplog.at_level(logging.INFO, logger="reimagine_emulator"):
        invoker.invoke(fn, {})
        invoker.invoke(fn, {})
    reports = [r.getMessage() for r in caplog.records if r.getMessage().startswith("REPORT RequestId: ")]
    assert ["Init Duration: " in line for line in reports] == [True, False]
    assert "Memory Size: 256 MB" in reports[0]


def test_a_handler_that_cannot_be_imported_fails_the_invocation_with_the_runtimes_init_error(
    app: Application, invoker: ProcessInvoker
) -> None:
    with pytest.raises(FunctionError) as failed:
        invoker.invoke(app.functions["Broken"], {})
    assert failed.value.payload["errorType"] == "Runtime.ImportModuleError"
    assert "no_such_module" in failed.value.payload["errorMessage"]


def test_ending_environments_leaves_nothing_on_stderr(
    app: Application, invoker: ProcessInvoker, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given environments waiting for their next event
    invoker.invoke(app.functions["Declares"], {})
    invoker.invoke(app.functions["Describe"], {})
    capfd.readouterr()
    # When they are ended
    invoker.stop()
    # Then their Runtime APIs close quietly: no traceback from a long poll cut short
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ('{"level":"WARNING","message":"injected AWS fault","service":"reimagine"}', logging.WARNING),
        ('{"level":"INFO","message":"caption step"}', logging.INFO),
        ("[ERROR] Runtime.ImportModuleError: Unable to import module 'x': No module named 'x'", logging.ERROR),
        ("[WARNING]\t2026-12-01T22:54:51.374Z\t\tLAMBDA_WARNING: Unhandled exception.", logging.WARNING),
        ("REPORT RequestId: 1\tDuration: 3.00 ms", logging.INFO),
        ('{"_aws":{"CloudWatchMetrics":[]},"RequestsCreated":[1.0]}', logging.INFO),
    ],
)
def test_what_an_environment_prints_is_logged_at_its_own_level(line: str, level: int) -> None:
    assert level_of(line) == level
