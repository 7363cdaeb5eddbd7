"""The whole pipeline on the local stack: the template's resources on an endpoint, its functions in-process."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from reimagine_local.invoke import Invoker
from reimagine_local.outbox import list_outbox
from reimagine_local.stack import EmbeddedStack
from reimagine_local.template import Function

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_PHOTO = ROOT / "infra" / "reimagine_local" / "assets" / "sample.jpg"


@dataclass
class Recorder:
    """Every (function, event) the local delivery invoked, so a test can deliver them all again."""

    calls: list[tuple[Function, Any]] = field(default_factory=list)

    def of(self, logical_id: str) -> list[Any]:
        return [event for fn, event in self.calls if fn.logical_id == logical_id]


@dataclass
class Pipeline:
    stack: EmbeddedStack
    outbox: Path
    recorder: Recorder

    def create(self, email: str, content_type: str, size: int | None = None) -> dict:
        body: dict[str, Any] = {"email": email, "content_type": content_type}
        if size is not None:
            body["size"] = size
        response = self.stack.api_invoke("POST", "/requests", body)
        assert response.status == 201, response.body
        return response.json()

    def upload(self, created: dict, data: bytes) -> requests.Response:
        form = created["upload"]
        return requests.post(form["url"], data=form["fields"], files={"file": ("upload", data)}, timeout=30)

    def submit(self, data: bytes, content_type: str, email: str = "jane.doe@example.com") -> str:
        created = self.create(email, content_type, len(data))
        assert self.upload(created, data).status_code == 204
        self.stack.drain()
        return created["id"]

    def status(self, request_id: str) -> dict:
        response = self.stack.api_invoke("GET", f"/requests/{request_id}")
        assert response.status == 200, response.body
        return response.json()

    def result_keys(self) -> list[str]:
        bucket = self.stack.app.functions["GenerateFunction"].environment["RESULTS_BUCKET"]
        listed = self.stack.client("s3").list_objects_v2(Bucket=bucket)
        return [o["Key"] for o in listed.get("Contents", [])]

    def mail_to(self, address: str) -> list:
        return [m for m in list_outbox(self.outbox) if m.to == address]

    def redeliver_everything(self) -> int:
        """Invoke every function again with every event it already had, as at-least-once delivery may."""
        calls = list(self.recorder.calls)
        invoker = Invoker(self.stack.app.template_dir)
        for fn, event in calls:
            invoker.invoke(fn, event)
        self.stack.drain()
        return len(calls)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    outbox = tmp_path_factory.mktemp("outbox")
    recorder = Recorder()
    original = Invoker.invoke

    def recording(self: Invoker, fn: Function, event: Any) -> Any:
        recorder.calls.append((fn, event))
        return original(self, fn, event)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Invoker, "invoke", recording)
        with EmbeddedStack(ROOT / "template.yaml", outbox_dir=outbox).start() as stack:
            yield Pipeline(stack, outbox, recorder)


def image_bytes(fmt: str, size: tuple[int, int] = (320, 240), **save: Any) -> bytes:
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()
