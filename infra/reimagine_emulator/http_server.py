"""The HttpApi on a local port: the socket side only. Every request, whatever its method, goes to the
gateway (api_events.Gateway), which routes, answers CORS, builds the event and shapes the response."""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from reimagine_emulator.api_events import MAX_PAYLOAD_BYTES, HttpResponse, bad_request, payload_too_large

log = logging.getLogger("reimagine_emulator")

# (method, path with query, header pairs, body, client ip) -> response; EmbeddedStack.api_invoke fits.
Invoke = Callable[..., HttpResponse]


class PortInUse(OSError):
    pass


class _Unreadable(ValueError):
    """A chunked body whose framing is broken: its end cannot be found."""


class _TooLarge(ValueError):
    """A chunked body over HttpApi's payload limit."""


def read_chunked(rfile: Any, limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """A `Transfer-Encoding: chunked` body (RFC 9112 section 7.1), whole: hex sizes with optional
    extensions, each chunk followed by CRLF, a zero-size chunk, then trailer lines up to an empty one
    (trailers are dropped, as API Gateway passes only the body on). Bounded by `limit` as it is read."""
    body = bytearray()
    while True:
        line = rfile.readline(1026)
        if not line.endswith(b"\n"):
            raise _Unreadable("chunk size line missing or too long")
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
            raise _Unreadable(f"bad chunk size {size_text[:16]!r}")
        size = int(size_text, 16)
        if size == 0:
            break
        if len(body) + size > limit:
            raise _TooLarge(f"chunked body over {limit} bytes")
        chunk = rfile.read(size)
        if len(chunk) != size or rfile.readline(3) not in (b"\r\n", b"\n"):
            raise _Unreadable("chunk shorter than its size")
        body += chunk
    for _ in range(100):  # trailer section
        line = rfile.readline(8194)
        if line in (b"\r\n", b"\n"):
            return bytes(body)
        if not line.endswith(b"\n"):
            break
    raise _Unreadable("trailer section does not end")


def _handler_class(invoke: Invoke) -> type[BaseHTTPRequestHandler]:
    class ApiRequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "reimagine-local"

        def _serve(self) -> None:
            coding = self.headers.get("Transfer-Encoding")
            if coding is not None:
                body = self._chunked_body(coding)
                if body is False:
                    return
            else:
                declared = self.headers.get("Content-Length") or "0"
                if not declared.isdigit():
                    self.close_connection = True  # the body's end is unknown: nothing more can be read
                    self._write(bad_request())
                    return
                length = int(declared)
                if length > MAX_PAYLOAD_BYTES:
                    self.close_connection = True  # the body is left unread
                    self._write(payload_too_large())
                    return
                body = self.rfile.read(length) if length else None
            response = invoke(
                self.command, self.path, body, list(self.headers.items()), source_ip=self.client_address[0]
            )
            self._write(response)

        def _chunked_body(self, coding: str) -> bytes | Literal[False] | None:
            """The whole body of a chunked request, as API Gateway hands it to the function; False when
            the request was answered here (400 or 413) and the connection is to close. Transfer-Encoding
            decides the framing over any Content-Length (RFC 9112 section 6.3); only `chunked` is read."""
            # With a Content-Length as well the request is suspect (smuggling): answered, then closed.
            keep_alive = not self.close_connection and "Content-Length" not in self.headers
            self.close_connection = True  # until the body's end is found
            if coding.strip().lower() != "chunked":
                self._write(bad_request())
                return False
            try:
                body = read_chunked(self.rfile)
            except _TooLarge:
                self._write(payload_too_large())
                return False
            except (_Unreadable, OSError):
                self._write(bad_request())
                return False
            self.close_connection = not keep_alive
            # The function sees the body's length, not the framing it came in.
            del self.headers["Transfer-Encoding"]
            del self.headers["Content-Length"]
            self.headers["Content-Length"] = str(len(body))
            return body or None

        def _write(self, response: HttpResponse) -> None:
            self.send_response(response.status)
            for name, value in response.header_lines():
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        def __getattr__(self, name: str) -> Any:
            # Every method reaches the gateway, which answers one no route has as HttpApi does (404),
            # where http.server would answer 501 with its own HTML page.
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

        def log_message(self, format: str, *args: object) -> None:  # the stack logs each request itself
            log.debug("http %s", format % args)

    return ApiRequestHandler


class ApiServer:
    """Serves until `stop()`; `start()` runs it in a daemon thread, `serve_forever()` in this one."""

    def __init__(self, invoke: Invoke, host: str = "127.0.0.1", port: int = 3000) -> None:
        # Bound now, so a taken port is reported before anything else starts (and port 0 gets its
        # number for the URL); listening waits for start(), so early clients are refused, not left hanging.
        self.httpd = ThreadingHTTPServer((host, port), _handler_class(invoke), bind_and_activate=False)
        # socketserver listens with a backlog of 5: a burst of clients connecting at once saw resets
        # where API Gateway answers every request (429 when over its throttling).
        self.httpd.request_queue_size = socket.SOMAXCONN
        try:
            self.httpd.server_bind()
        except OSError as exc:
            self.httpd.server_close()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    exc.errno, f"port {port} on {host} is already in use; choose another with --port"
                ) from None
            raise
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ApiServer:
        self.httpd.server_activate()
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="reimagine-api", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.server_activate()
        self.httpd.serve_forever()

    def stop(self) -> None:
        # shutdown() waits for a serve_forever loop, so it would hang on a server never started.
        if self._thread:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.httpd.server_close()
