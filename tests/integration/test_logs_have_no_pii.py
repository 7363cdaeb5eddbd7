"""No log line names a person or carries a secret.

Requests run through the whole pipeline while everything logged is captured: the functions'
Powertools loggers (JSON on stdout, every field, via capfd) and every Python logger at INFO, the
level the functions run at (the local stack's `reimagine_local` delivery lines among them, via
caplog). Then no email address and nothing token-like may appear. One run uses the Hugging Face
provider with a fake token (the router faked with `responses`), including an error answer that
echoes the token back.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import responses

from reimagine.observability import logger
from reimagine_local.invoke import cold_start
from tests.fixtures import images
from tests.fixtures.provider_answers import hub_model_info, mapping
from tests.integration.conftest import Pipeline

pytestmark = pytest.mark.integration

EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
TOKEN = "hf_FakeTokenForTheLogTest0123456789"
TOKEN_LIKE = [
    re.compile(r"\bhf_[A-Za-z0-9]{8,}"),  # Hugging Face tokens
    re.compile(r"Bearer\s+\S+", re.IGNORECASE),
    re.compile(r"X-Amz-Signature|x-amz-security-token|\"signature\"", re.IGNORECASE),  # presigned URLs, POST policies
]
HF_BASE = "https://router.huggingface.co"
HF_HUB = "https://huggingface.co"
CAPTION_MODEL = "Qwen/Qwen3-VL-8B-Instruct"
IMAGE_MODEL = "black-forest-labs/FLUX.1-schnell"
CHAT_URL = f"{HF_BASE}/v1/chat/completions"
HUB_URL = f"{HF_HUB}/api/models/{IMAGE_MODEL}"
IMAGE_URL = f"{HF_BASE}/hf-inference/models/{IMAGE_MODEL}"
TOKEN_PARAMETER = "/reimagine/test/huggingface/token"


@dataclass
class Capture:
    """Where everything logged during one test goes."""

    functions: io.StringIO  # the Powertools handler's own output: the JSON lines Lambda would ship
    fds: pytest.CaptureFixture[str]  # anything else written to stdout or stderr
    records: pytest.LogCaptureFixture  # every Python logger at INFO

    def text(self) -> str:
        out, err = self.fds.readouterr()
        lines = [
            f"{r.name} {r.levelname} {r.getMessage()} {json.dumps(_extras(r), default=str)}"
            for r in self.records.records
        ]
        return "\n".join([self.functions.getvalue(), out, err, *lines])


def _extras(record: logging.LogRecord) -> dict:
    """Fields passed with `extra=`: a log formatter may print them even if the message does not."""
    standard = set(vars(logging.makeLogRecord({})))
    return {k: v for k, v in vars(record).items() if k not in standard}


def _assert_clean(logged: str, *, addresses: list[str]) -> None:
    # The capture really holds the functions' structured lines and the stack's delivery lines.
    assert '"service":"reimagine"' in logged
    assert "CaptionFunction s3 " in logged and "NotifyFunction stream " in logged
    for address in addresses:
        assert address not in logged
        assert address.split("@")[0] not in logged  # not even the local part
    assert EMAIL.findall(logged) == []
    for pattern in TOKEN_LIKE:
        assert pattern.findall(logged) == [], pattern.pattern


@pytest.fixture
def logged(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Iterator[Capture]:
    caplog.set_level(logging.INFO)
    # The Powertools handler keeps the stdout it found when the logger was built (in this process,
    # some earlier test's capture); point it at a buffer for this test, then back.
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield Capture(buffer, capfd, caplog)
    finally:
        handler.setStream(previous)


def test_a_run_through_the_pipeline_logs_no_address_and_no_secret(pipeline: Pipeline, logged: Capture) -> None:
    addresses = ["zelda.quokka-private@example.org", "Ingrid.Oyelaran+photos@mail.example.co.uk"]
    done = pipeline.submit(images.jpeg((96, 64)), "image/jpeg", email=addresses[0])
    failed = pipeline.submit(b"plain words, not a picture", "image/png", email=addresses[1])
    assert pipeline.status(done)["status"] == "COMPLETED"
    assert pipeline.status(failed)["status"] == "FAILED"
    assert pipeline.stack.api_invoke("GET", f"/requests/{done}/result").status == 302
    # A refused body must not be echoed into the logs either.
    refused = pipeline.stack.api_invoke(
        "POST", "/requests", {"email": "not-an-address-of-kelvin.marsh@", "content_type": "image/png"}
    )
    assert refused.status == 422
    _assert_clean(logged.text(), addresses=[*addresses, "kelvin.marsh"])


@pytest.fixture
def huggingface_provider(pipeline: Pipeline) -> Iterator[responses.RequestsMock]:
    """The functions switched to the Hugging Face provider, its token in Parameter Store, its router faked."""
    pipeline.stack.client("ssm").put_parameter(Name=TOKEN_PARAMETER, Value=TOKEN, Type="SecureString", Overwrite=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROVIDER", "huggingface")
        patch.setenv("HF_TOKEN_PARAMETER", TOKEN_PARAMETER)
        patch.setenv("HF_ROUTER_URL", HF_BASE)
        patch.setenv("HF_HUB_URL", HF_HUB)
        patch.setenv("HF_CAPTION_MODELS", CAPTION_MODEL)
        patch.setenv("HF_IMAGE_MODELS", IMAGE_MODEL)
        cold_start("reimagine")  # settings and providers are read again, like a new container
        with responses.RequestsMock(assert_all_requests_are_fired=False) as router:
            # Uploads and presigned links go to the stack's endpoint for real.
            router.add_passthru(pipeline.stack.endpoint_url or "")
            yield router
    cold_start("reimagine")
    assert os.environ.get("PROVIDER") != "huggingface"


def _chat(caption: str) -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": caption}}]}


def test_a_hugging_face_run_never_logs_its_token(
    pipeline: Pipeline,
    huggingface_provider: responses.RequestsMock,
    logged: Capture,
) -> None:
    router = huggingface_provider
    router.post(CHAT_URL, json=_chat("A small red square on a plain background."))
    router.get(HUB_URL, json=hub_model_info(IMAGE_MODEL, [mapping("hf-inference", IMAGE_MODEL)]))
    router.post(IMAGE_URL, body=images.png((64, 64)), content_type="image/png")
    done = pipeline.submit(images.jpeg((96, 64)), "image/jpeg", email="hf.ok.person@example.com")
    record = pipeline.status(done)
    assert (record["status"], record["caption_provider"]) == ("COMPLETED", "huggingface")
    # The token really went out, in the header and nowhere else.
    sent = [call.request for call in router.calls]
    assert sent and all(request.headers["Authorization"] == f"Bearer {TOKEN}" for request in sent)

    # An error answer that quotes the credentials back must not carry them into logs, record or mail.
    router.replace(
        responses.POST, CHAT_URL, status=401, json={"error": f"Invalid credentials in Authorization: Bearer {TOKEN}"}
    )
    refused = pipeline.submit(images.jpeg((96, 64)), "image/jpeg", email="hf.refused.person@example.com")
    record = pipeline.status(refused)
    assert (record["status"], record["error"]["code"]) == ("FAILED", "PROVIDER_REJECTED")
    assert TOKEN not in json.dumps(record)
    assert TOKEN not in pipeline.mail_to("hf.refused.person@example.com")[0].file.read_text()

    text = logged.text()
    assert TOKEN not in text
    _assert_clean(text, addresses=["hf.ok.person@example.com", "hf.refused.person@example.com"])
