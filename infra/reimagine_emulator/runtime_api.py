"""One execution environment's Lambda Runtime API, as the custom-runtime documentation describes it.

The runtime in the environment (AWS's Runtime Interface Client, `awslambdaric`) long-polls
`GET /2018-06-01/runtime/invocation/next` for an event, then posts the handler's result to
`/invocation/{id}/response` or its error to `/invocation/{id}/error`; a handler that cannot be loaded
is posted to `/init/error`. Each environment gets its own server on 127.0.0.1, as each Lambda sandbox
has its own endpoint (AWS_LAMBDA_RUNTIME_API), so one environment serves one invocation at a time.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"
_RESULT = re.compile(rf"^{PREFIX}/invocation/(?P<id>[^/]+)/(?P<kind>response|error)$")
# Lambda's limit on a synchronous response payload.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024


@dataclass
class Invocation:
    """One event for the environment and, once it is back, the handler's result or error."""

    request_id: str
    event: bytes
    timeout_seconds: float
    function_arn: str
    trace_id: str = ""
    handed_out: float | None = None  # monotonic time /next returned it
    deadline_ms: int = 0
    result: bytes | None = None
    error: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)


class RuntimeApi:
    """Hands the runtime one invocation at a time and takes back what it posts."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Invocation] = queue.Queue()
        self._current: Invocation | None = None
        self._lock = threading.Lock()
        self.init_error: dict[str, Any] | None = None
        self.init_done = threading.Event()  # the runtime asked for its first event, or failed to start
        self.init_finished_at: float | None = None
        self._closed = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="runtime-api", daemon=True)

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> RuntimeApi:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        self.server.shutdown()
        self.server.server_close()

    def submit(self, invocation: Invocation) -> None:
        self._queue.put(invocation)

    # What the handler class calls ---------------------------------------------------------------

    def next_invocation(self) -> Invocation | None:
        if not self.init_done.is_set():
            self.init_finished_at = time.monotonic()
            self.init_done.set()
        while not self._closed.is_set():
            try:
                invocation = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            invocation.handed_out = time.monotonic()
            invocation.deadline_ms = int((time.time() + invocation.timeout_seconds) * 1000)
            with self._lock:
                self._current = invocation
            return invocation
        return None

    def finish(self, request_id: str, *, result: bytes | None = None, error: dict[str, Any] | None = None) -> bool:
        with self._lock:
            invocation = self._current
            if invocation is None or invocation.request_id != request_id:
                return False
            self._current = None
        invocation.result, invocation.error = result, error
        invocation.done.set()
        return True

    def fail_init(self, error: dict[str, Any]) -> None:
        self.init_error = error
        self.init_finished_at = time.monotonic()
        self.init_done.set()


def _handler_class(api: RuntimeApi) -> type[BaseHTTPRequestHandler]:
    class RuntimeApiHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes; with Nagle's algorithm the second waits for the
        # runtime's delayed ACK (~40 ms) on every kept-alive request.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            if self.path != f"{PREFIX}/invocation/next":
                self._json(404, {"errorType": "NotFound", "errorMessage": self.path})
                return
            invocation = api.next_invocation()
            if invocation is None:  # the environment ended; its runtime is gone, nobody to answer
                self.close_connection = True
                return
            headers = {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
            }
            if invocation.trace_id:
                headers["Lambda-Runtime-Trace-Id"] = invocation.trace_id
            self._send(200, headers, invocation.event)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == f"{PREFIX}/init/error":
                api.fail_init(_error_payload(body, self.headers.get("Lambda-Runtime-Function-Error-Type")))
                self._json(202, {"status": "OK"})
                return
            found = _RESULT.match(self.path)
            if not found:
                self._json(404, {"errorType": "NotFound", "errorMessage": self.path})
                return
            if found["kind"] == "response" and len(body) > MAX_RESPONSE_BYTES:
                error = {"errorType": "Function.ResponseSizeTooLarge", "errorMessage": "Response payload size exceeded"}
                api.finish(found["id"], error=error)
                self._json(413, error)
                return
            if found["kind"] == "response":
                accepted = api.finish(found["id"], result=body)
            else:
                error = _error_payload(body, self.headers.get("Lambda-Runtime-Function-Error-Type"))
                accepted = api.finish(found["id"], error=error)
            if accepted:
                self._json(202, {"status": "OK"})
            else:
                self._json(400, {"errorType": "InvalidRequestID", "errorMessage": "no such invocation in progress"})

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            # A runtime killed at a timeout may be gone before its answer: nothing to tell it then.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # one line per poll otherwise
            pass

    return RuntimeApiHandler


def _error_payload(body: bytes, error_type: str | None) -> dict[str, Any]:
    try:
        payload = json.loads(body) if body else {}
    except ValueError:
        payload = {"errorMessage": body.decode("utf-8", "replace")}
    if not isinstance(payload, dict):
        payload = {"errorMessage": str(payload)}
    payload.setdefault("errorType", error_type or "Runtime.Unknown")
    return payload
