"""What the browser suites share: the whole application on a free port, its sent mail in `outbox`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from reimagine_emulator.http_server import ApiServer
from reimagine_emulator.stack import EmbeddedStack
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def outbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outbox")


@pytest.fixture(scope="module")
def site(request: pytest.FixtureRequest, outbox: Path) -> Iterator[str]:
    """The whole application: emulator, event delivery in the background, the HttpApi on a free port."""
    holder: dict[str, EmbeddedStack] = {}
    # Bound first so the functions learn the real URL (API_BASE_URL) before they start.
    server = ApiServer(lambda *args, **kwargs: holder["stack"].api_invoke(*args, **kwargs), port=0)
    # A stack name per module: moto's state is per process, shared with other suites in the same run.
    name = "reimagine-" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    try:
        stack = EmbeddedStack(ROOT / "template.yaml", stack_name=name, api_base_url=server.url, outbox_dir=outbox)
        with stack.start():
            holder["stack"] = stack
            stack.start_background_delivery()
            server.start()
            yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
