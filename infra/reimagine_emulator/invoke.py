"""Calling a function's handler in this process, the way the Lambda runtime would.

All functions share one process, and they read their settings once and cache them
(`reimagine.config.settings()`), so they cannot each see only their own Environment. Instead the
UNION of every function's variables is put in os.environ before the first invocation; a variable
two functions declare must then have the same value in both, which `union_environment` checks.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reimagine_tools.template import Function

Handler = Callable[[Any, Any], Any]


class Throttled(Exception):
    """Every environment the function may have is busy (Lambda's 429 TooManyRequestsException); raised
    only to a caller that asked not to wait (`wait=False`: the async queue, which retries it itself)."""


class EnvironmentConflict(ValueError):
    """Two functions declare one variable with different values; one process cannot hold both."""


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    identity: Any = None
    client_context: Any = None
    _started: float = field(default_factory=time.monotonic)

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self._started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))

    @classmethod
    def for_function(cls, fn: Function) -> LambdaContext:
        return cls(fn.name, fn.memory_size, fn.arn, fn.timeout)


def union_environment(functions: Iterable[Function]) -> dict[str, str]:
    """Every function's variables in one mapping; raises if a shared variable's values disagree."""
    merged: dict[str, str] = {}
    owners: dict[str, str] = {}
    conflicts = []
    for fn in functions:
        for name, value in fn.environment.items():
            if name in merged and merged[name] != value:
                conflicts.append(f"{name} ({owners[name]}={merged[name]!r}, {fn.logical_id}={value!r})")
            merged.setdefault(name, value)
            owners.setdefault(name, fn.logical_id)
    if conflicts:
        raise EnvironmentConflict("functions disagree on: " + "; ".join(conflicts))
    return merged


def apply_environment(variables: dict[str, str], environ: MutableMapping[str, str]) -> dict[str, str | None]:
    """Set the variables; returns what was there before so it can be restored."""
    previous = {name: environ.get(name) for name in variables}
    environ.update(variables)
    return previous


def restore_environment(previous: dict[str, str | None], environ: MutableMapping[str, str]) -> None:
    for name, value in previous.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value


def cold_start(package: str) -> None:
    """Forget what a package's modules cached from an earlier environment, like a new container.

    Handlers cache settings and clients (functools caches) at module level; in a process that has
    already imported them (a test session), those would still point at another endpoint or table.
    """
    # Powertools Parameters keeps one provider (and its boto3 client) per process for every caller.
    parameters = sys.modules.get("aws_lambda_powertools.utilities.parameters")
    if parameters is not None:
        parameters.clear_caches()
    for name, module in list(sys.modules.items()):
        if module is None or (name != package and not name.startswith(package + ".")):
            continue
        for value in list(vars(module).values()):
            if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", None) == name:
                value.cache_clear()


class Invoker:
    """Imports each handler once ("module.func") and calls it with a fresh context per invocation."""

    def __init__(self, template_dir: Path) -> None:
        self.template_dir = template_dir
        self._handlers: dict[str, Handler] = {}
        # One invocation per function at a time, as in one Lambda container: handlers keep
        # per-invocation state in module globals (Powertools' resolver holds the current event).
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def handler(self, fn: Function) -> Handler:
        if fn.handler not in self._handlers:
            if fn.code_uri:
                code_dir = str((self.template_dir / fn.code_uri).resolve())
                if Path(code_dir).is_dir() and code_dir not in sys.path:
                    sys.path.append(code_dir)
            module_name, _, attribute = fn.handler.rpartition(".")
            self._handlers[fn.handler] = getattr(importlib.import_module(module_name), attribute)
        return self._handlers[fn.handler]

    def invoke(self, fn: Function, event: Any, *, wait: bool = True) -> Any:
        """The handler's return value; its exception propagates (a function error). Raises Throttled
        instead of waiting for the function's one container when `wait` is False."""
        with self._guard:
            lock = self._locks[fn.logical_id]
        if not lock.acquire(blocking=wait):
            raise Throttled(f"{fn.logical_id}: its one in-process container is busy")
        try:
            return self.handler(fn)(event, LambdaContext.for_function(fn))
        finally:
            lock.release()
