"""Injected AWS faults, for the fault lane: a share of the functions' DynamoDB, S3 and SES calls fail
the way AWS fails them, so the pipeline's retries, claims and sweeps are exercised end to end.

Off unless INJECTED_AWS_FAULT_RATE is above 0 (never set in template.yaml; the local stack passes it
through the functions' Environment, e.g. `--env-vars`). The injector hangs on botocore's `before-send`
event of each client built in `reimagine.clients`: for a faulted call it returns a response in place
of sending the request, so the service never sees it, and botocore parses and retries it exactly as
it would a real throttle or 5xx. Faults where the service acted but the answer was lost are not
modelled (SES has no idempotency key: such a fault would send a second email whatever the code does).
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from reimagine.observability import logger


@dataclass(frozen=True)
class Fault:
    status: int
    code: str
    body: bytes
    content_type: str


def _json(status: int, code: str, message: str) -> Fault:  # DynamoDB: JSON 1.0 protocol
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}).encode()
    return Fault(status, code, body, "application/x-amz-json-1.0")


def _s3(status: int, code: str, message: str) -> Fault:  # S3: REST-XML
    body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>FAULT</RequestId></Error>"
    return Fault(status, code, body.encode(), "application/xml")


def _query(status: int, code: str, message: str) -> Fault:  # SES v1: query protocol
    kind = "Receiver" if status >= 500 else "Sender"
    body = (
        '<ErrorResponse xmlns="http://ses.amazonaws.com/doc/2010-12-01/"><Error>'
        f"<Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>"
        "</Error><RequestId>FAULT</RequestId></ErrorResponse>"
    )
    return Fault(status, code, body.encode(), "text/xml")


# What each service answers when it sheds load: a throttle, and a server error.
FAULTS: dict[str, tuple[Fault, ...]] = {
    "dynamodb": (
        _json(400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."),
        _json(500, "InternalServerError", "Internal server error"),
    ),
    "s3": (
        _s3(503, "SlowDown", "Please reduce your request rate."),
        _s3(500, "InternalError", "We encountered an internal error. Please try again."),
    ),
    "ses": (
        _query(400, "Throttling", "Maximum sending rate exceeded."),
        _query(503, "ServiceUnavailable", "Service is unable to handle request."),
    ),
}


class _Body:
    """The `raw` of an AWSResponse: botocore reads the body through `stream()`."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


class FaultInjector:
    """Fails a seeded share of calls; thread-safe; counts what it injected per service and code."""

    def __init__(self, rate: float, seed: int | None = None) -> None:
        self.rate = rate
        self.seed = seed
        self._random = random.Random(seed)  # noqa: S311 - test traffic, not security
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    def __call__(self, request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        service = event_name.split(".")[1] if event_name.count(".") >= 2 else ""
        faults = FAULTS.get(service)
        if not faults:
            return None
        with self._lock:
            self.calls[service] += 1
            if self._random.random() >= self.rate:
                return None
            fault = self._random.choice(faults)
            self.injected[f"{service} {fault.code}"] += 1
        logger.warning("injected AWS fault", extra={"fault": f"{event_name} {fault.status} {fault.code}"})
        headers = HTTPHeaders()
        for name, value in (("Content-Type", fault.content_type), ("x-amzn-RequestId", "FAULT")):
            headers[name] = value
        return AWSResponse(request.url, fault.status, headers, _Body(fault.body))


_injector: FaultInjector | None = None
_guard = threading.Lock()


def injector(rate: float, seed: int | None) -> FaultInjector | None:
    """The container's one injector (so its counts cover every client), or None when faults are off."""
    global _injector
    if rate <= 0:
        return None
    with _guard:
        if _injector is None or (_injector.rate, _injector.seed) != (rate, seed):
            _injector = FaultInjector(rate, seed)
        return _injector


def current() -> FaultInjector | None:
    """The injector in use in this process, if any (a load run reads its counts)."""
    return _injector


def attach(client: Any, rate: float, seed: int | None) -> Any:
    """Register the injector on a client, first, so no other `before-send` handler answers before it."""
    found = injector(rate, seed)
    if found is not None:
        client.meta.events.register_first("before-send", found)
    return client
