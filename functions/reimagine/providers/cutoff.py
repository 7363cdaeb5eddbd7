"""A total deadline for one HTTP exchange, which requests and urllib3 do not have.

Their read timeout bounds each socket read, so a server that sends one byte every few seconds keeps
a response alive forever. `Cutoff(seconds)` starts a timer; every connection urllib3 sends a request
on while the cutoff is current (same thread) is registered, and when the time is up their sockets
are shut down: the blocked read returns at once, requests raises, and `fired` tells the caller it
was the deadline. It covers sending, the status line and headers, and the body alike; the TLS
handshake before them is bounded as a whole by the connect timeout (CPython's ssl module gives
do_handshake one deadline).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


class Cutoff:
    """`with Cutoff(seconds) as cutoff:` ... then `cutoff.fired`."""

    def __init__(self, seconds: float) -> None:
        self._seconds = max(0.0, seconds)
        self._lock = threading.Lock()
        self._connections: list[HTTPConnection] = []
        self._timer = threading.Timer(self._seconds, self._fire)
        self._timer.daemon = True
        self.fired = False

    def __enter__(self) -> Cutoff:
        _current.cutoff = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _current.cutoff = None
        with self._lock:
            self._connections.clear()

    def watch(self, connection: HTTPConnection) -> None:
        with self._lock:
            self._connections.append(connection)
            fired = self.fired
        if fired:
            _shut(connection)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            connections = list(self._connections)
        for connection in connections:
            _shut(connection)


def _shut(connection: HTTPConnection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    # socket.socket's own shutdown, also for an SSLSocket: wake the reader without touching TLS state.
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watch(connection: HTTPConnection) -> None:
    cutoff = getattr(_current, "cutoff", None)
    if cutoff is not None:
        cutoff.watch(connection)


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class CutoffAdapter(HTTPAdapter):
    """requests' adapter, with connections a current Cutoff can shut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
