"""The local stack as a running service: emulator (or endpoint), event delivery and the HTTP API together."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reimagine_emulator.http_server import ApiServer
from reimagine_emulator.stack import EmbeddedStack
from reimagine_tools.sam_options import SamOptions
from reimagine_tools.template import find_template


@dataclass
class RunningStack:
    stack: EmbeddedStack
    server: ApiServer
    _stopped: threading.Event

    @property
    def api_url(self) -> str:
        return self.server.url

    @property
    def endpoint_url(self) -> str:
        return self.stack.endpoint_url or "AWS"

    def wait(self) -> None:
        """Block until Ctrl-C (SIGINT) or SIGTERM; the caller's `with` then stops everything."""
        previous = {sig: signal.signal(sig, lambda *_: self._stopped.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not self._stopped.wait(0.5):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


# What the local stack is started with: `sam local`'s options (-t, --parameter-overrides, --env-vars).
StackConfig = SamOptions


@contextmanager
def running_stack(
    *,
    port: int = 3000,
    endpoint_url: str | None = None,
    outbox: Path | None = None,
    host: str = "127.0.0.1",
    config: StackConfig | None = None,
    environments: bool = True,
) -> Iterator[RunningStack]:
    """Start everything; stop everything on the way out, whatever happened."""
    config = config or StackConfig()
    # Readable output: the stack's one line per event; the functions' own JSON logs only for warnings.
    # In this process that is Powertools' level; environments print at the template's level, and
    # what they print is logged at its own level under `reimagine_emulator.fn`.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    holder: dict[str, EmbeddedStack] = {}
    # The server binds first: a taken port is a clear error before anything else starts,
    # and port 0 picks a free one whose URL the functions then get as API_BASE_URL.
    server = ApiServer(lambda *args, **kwargs: holder["stack"].api_invoke(*args, **kwargs), host=host, port=port)
    functions_log = logging.getLogger("reimagine_emulator.fn")
    level = functions_log.level
    if level == logging.NOTSET:
        functions_log.setLevel(os.environ["POWERTOOLS_LOG_LEVEL"].upper())
    try:
        stack = EmbeddedStack(
            config.template or find_template(),
            parameters=config.parameters,
            env_vars=config.env_vars,
            api_base_url=server.url,
            outbox_dir=outbox,
            environments=environments,
        )
        holder["stack"] = stack
        stack.start(endpoint_url)
        try:
            stack.start_background_delivery()
            server.start()
            yield RunningStack(stack, server, threading.Event())
        finally:
            stack.stop()
    finally:
        server.stop()
        functions_log.setLevel(level)  # only while it runs (a test process starts several)
