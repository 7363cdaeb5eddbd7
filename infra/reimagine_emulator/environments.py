"""Execution environments as Lambda makes them: one process per environment, reused, bounded, timed out.

Each environment is a Python process running AWS's Runtime Interface Client (`python -m awslambdaric
<handler>`) against its own local Runtime API (runtime_api.py). Its environment variables are exactly
the function's Environment from the template plus what Lambda itself sets (function name, memory,
region, log group, handler, runtime API address, credentials), and the emulator's endpoint; nothing of
this process's environment leaks in, so a variable missing from a function's own section is missing.

A function's environments are created on demand, up to its concurrency (ReservedConcurrentExecutions,
else `default_concurrency`), and reused by later invocations. An invocation that passes the function's
Timeout (from when the runtime took its event) ends its environment and fails as Lambda's does (`Task
timed out after N.NN seconds`); one that dies or cannot load its handler ends it too, and an environment
that died while idle is replaced before it is handed an event. Every invocation logs Lambda's REPORT line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from reimagine_emulator.invoke import Throttled
from reimagine_emulator.runtime_api import Invocation, RuntimeApi
from reimagine_tools.template import Function

log = logging.getLogger("reimagine_emulator.environments")

# Lambda gives the init phase 10 s before it retries init inside the first invocation.
INIT_LIMIT_SECONDS = 10.0
DEFAULT_CONCURRENCY = 4
# What a Lambda sandbox has that is not about the function; PATH so the interpreter finds its tools.
_LAMBDA_STATIC = {"TZ": ":UTC", "LANG": "en_US.UTF-8", "PYTHONUNBUFFERED": "1"}


def level_of(line: str) -> int:
    """A line an environment printed, at its own level, so a reader can keep warnings only: a
    Powertools JSON line's "level", the runtime's `[ERROR] ...`/`[WARNING] ...`; else (REPORT,
    print, a traceback's continuation) INFO."""
    if line.startswith("{") and '"level"' in line:
        with contextlib.suppress(ValueError, AttributeError):
            level = logging.getLevelName(str(json.loads(line).get("level", "")).upper())
            if isinstance(level, int):
                return level
    for prefix, level in (("[ERROR]", logging.ERROR), ("[WARNING]", logging.WARNING)):
        if line.startswith(prefix):
            return level
    return logging.INFO


class FunctionError(Exception):
    """An invocation failed; `payload` is what Lambda returns ({errorType, errorMessage, ...})."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(f"{payload.get('errorType', 'Error')}: {payload.get('errorMessage', '')}")
        self.payload = payload


def lambda_environment(
    fn: Function,
    *,
    region: str,
    runtime_api: str,
    task_root: Path,
    extra: Mapping[str, str] | None = None,
    layer_roots: tuple[Path, ...] = (),
) -> dict[str, str]:
    """The variables an environment of `fn` starts with: its own Environment and what Lambda sets."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **_LAMBDA_STATIC,
        **(extra or {}),
        **fn.environment,
        "AWS_LAMBDA_FUNCTION_NAME": fn.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{version}",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).parent),
        # Lambda's order: the function's code, then each layer's python/ (/opt/python).
        "PYTHONPATH": os.pathsep.join([str(task_root), *(str(root / "python") for root in layer_roots)]),
        "_HANDLER": fn.handler,
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    }


@dataclass
class Report:
    """What Lambda's REPORT line says about one invocation."""

    request_id: str
    duration_ms: float
    memory_size: int
    max_memory_mb: int
    init_duration_ms: float | None

    def line(self) -> str:
        billed = max(1, int(-(-self.duration_ms // 1)))
        text = (
            f"REPORT RequestId: {self.request_id}\tDuration: {self.duration_ms:.2f} ms\t"
            f"Billed Duration: {billed} ms\tMemory Size: {self.memory_size} MB\t"
            f"Max Memory Used: {self.max_memory_mb} MB"
        )
        if self.init_duration_ms is not None:
            text += f"\tInit Duration: {self.init_duration_ms:.2f} ms"
        return text


class Environment:
    """One execution environment of a function: a runtime process and its Runtime API."""

    def __init__(
        self,
        fn: Function,
        *,
        task_root: Path,
        region: str,
        extra_env: Mapping[str, str],
        python: str,
        layer_roots: tuple[Path, ...] = (),
    ) -> None:
        self.fn = fn
        self.api = RuntimeApi().start()
        self.started = time.monotonic()
        self.invocations = 0
        self._stopped = False
        env = lambda_environment(
            fn,
            region=region,
            runtime_api=self.api.address,
            task_root=task_root,
            extra=extra_env,
            layer_roots=layer_roots,
        )
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter, the template's handler
            [python, "-m", "awslambdaric", fn.handler],
            cwd=task_root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout ends everything it started
        )
        self._logger = logging.getLogger(f"reimagine_emulator.fn.{fn.logical_id}")
        assert self.process.stdout is not None
        threading.Thread(target=self._pump, args=(self.process.stdout,), daemon=True).start()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None and self.api.init_error is None

    def invoke(self, event: Any) -> Any:
        """The handler's result; raises FunctionError as Lambda reports the failure."""
        first = self.invocations == 0
        self.invocations += 1
        invocation = Invocation(
            request_id=str(uuid.uuid4()),
            event=json.dumps(event).encode(),
            timeout_seconds=float(self.fn.timeout),
            function_arn=self.fn.arn,
            trace_id=f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
        )
        submitted = time.monotonic()
        self.api.submit(invocation)
        error = self._wait(invocation, submitted)
        finished, peak = time.monotonic(), self._peak_mb()
        if error is not None:
            self.stop()  # Lambda ends an environment whose invocation timed out or whose runtime failed
        began = invocation.handed_out or finished
        init_ms = None
        if first and self.api.init_finished_at is not None:
            init_ms = (self.api.init_finished_at - self.started) * 1000
        report = Report(invocation.request_id, (finished - began) * 1000, self.fn.memory_size, peak, init_ms)
        self._logger.info("%s", report.line())
        if error is not None:
            raise FunctionError(error)
        if invocation.error is not None:
            raise FunctionError(invocation.error)
        return json.loads(invocation.result) if invocation.result else None

    def _wait(self, invocation: Invocation, submitted: float) -> dict[str, Any] | None:
        """None when the runtime answered; else the error Lambda would report (the environment must end).

        The Timeout runs from when the runtime takes the event, as Lambda measures it. Until then the
        runtime may still be in its init phase, which has a limit of its own (a new environment), or be
        waiting for a CPU before its next poll returns (a warm one on a busy machine): either way it gets
        a full Timeout from then on, and a runtime that never takes the event fails the invocation a
        Timeout after the later of its init limit and the submission.
        """
        pickup_deadline = max(self.started + INIT_LIMIT_SECONDS, submitted) + self.fn.timeout
        while not invocation.done.wait(0.01):
            now = time.monotonic()
            if self.api.init_error is not None:
                return self.api.init_error
            if self.process.poll() is not None:
                message = f"Runtime exited with error: exit status {self.process.returncode}"
                return {"errorType": "Runtime.ExitError", "errorMessage": message}
            began = invocation.handed_out
            if (began is not None and now - began > self.fn.timeout) or (began is None and now > pickup_deadline):
                return {"errorMessage": self._timed_out(invocation.request_id)}
        return None

    def _timed_out(self, request_id: str) -> str:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        message = f"{stamp} {request_id} Task timed out after {self.fn.timeout:.2f} seconds"
        self._logger.warning("%s", message)
        return message

    def _peak_mb(self) -> int:
        # Lambda's Max Memory Used is the sandbox's peak; the process's VmHWM is the closest here.
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
        return 0

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            self._logger.log(level_of(line), "%s", line)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.api.close()


class FunctionEnvironments:
    """A function's environments: reused when idle, created up to its concurrency, waited for beyond."""

    def __init__(
        self,
        fn: Function,
        *,
        task_root: Path,
        region: str,
        extra_env: Mapping[str, str],
        default_concurrency: int = DEFAULT_CONCURRENCY,
        python: str = sys.executable,
        layer_roots: tuple[Path, ...] = (),
    ) -> None:
        self.fn = fn
        self.concurrency = fn.reserved_concurrency or default_concurrency
        self._make = lambda: Environment(
            fn, task_root=task_root, region=region, extra_env=extra_env, python=python, layer_roots=layer_roots
        )
        self._idle: list[Environment] = []
        self._count = 0
        self._ready = threading.Condition()
        self.created = 0

    def invoke(self, event: Any, *, wait: bool = True) -> Any:
        environment = self._acquire(wait)
        try:
            return environment.invoke(event)
        finally:
            self._release(environment)

    def _acquire(self, wait: bool) -> Environment:
        dead: list[Environment] = []
        try:
            with self._ready:
                while True:
                    # An environment that died while idle (killed, out of memory) is never handed work:
                    # Lambda replaces a dead sandbox, so its place goes to a new one.
                    while self._idle and not self._idle[-1].alive:
                        dead.append(self._idle.pop())
                        self._count -= 1
                    if self._idle:
                        return self._idle.pop()
                    if self._count < self.concurrency:
                        break
                    if not wait:
                        raise Throttled(f"{self.fn.logical_id}: all {self.concurrency} environments are busy")
                    self._ready.wait()
                self._count += 1
                self.created += 1
        finally:
            for environment in dead:  # outside the lock: ending one waits for its Runtime API to close
                environment.stop()
        try:
            return self._make()
        except BaseException:
            with self._ready:
                self._count -= 1
                self._ready.notify()
            raise

    def _release(self, environment: Environment) -> None:
        with self._ready:
            alive = environment.alive
            if alive:
                self._idle.append(environment)
            else:
                self._count -= 1
            self._ready.notify()
        if not alive:  # outside the lock: ending one waits for its Runtime API to close
            environment.stop()

    def stop(self) -> None:
        with self._ready:
            idle, self._idle = self._idle, []
        for environment in idle:
            environment.stop()


class ProcessInvoker:
    """`invoke(fn, event)` through each function's environments; the in-process Invoker's interface."""

    def __init__(
        self,
        template_dir: Path,
        *,
        region: str,
        extra_env: Mapping[str, str],
        default_concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.template_dir = template_dir
        self.region = region
        self.extra_env = dict(extra_env)
        self.default_concurrency = default_concurrency
        self._pools: dict[str, FunctionEnvironments] = {}
        self._guard = threading.Lock()

    def environments(self, fn: Function) -> FunctionEnvironments:
        with self._guard:
            if fn.logical_id not in self._pools:
                root = (self.template_dir / fn.code_uri) if fn.code_uri else self.template_dir
                self._pools[fn.logical_id] = FunctionEnvironments(
                    fn,
                    task_root=root.resolve(),
                    layer_roots=tuple((self.template_dir / layer).resolve() for layer in fn.layers),
                    region=self.region,
                    extra_env=self.extra_env,
                    default_concurrency=self.default_concurrency,
                )
            return self._pools[fn.logical_id]

    def invoke(self, fn: Function, event: Any, *, wait: bool = True) -> Any:
        return self.environments(fn).invoke(event, wait=wait)

    def stop(self) -> None:
        with self._guard:
            pools = list(self._pools.values())
        for pool in pools:
            pool.stop()
