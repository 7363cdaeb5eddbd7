"""No log line names a person or carries a secret.

Requests run through the whole pipeline, each function in its own execution environments, while
everything logged is captured: what the environments print (the functions' Powertools JSON lines,
REPORT lines, anything on their stdout or stderr), which the stack logs as `reimagine_emulator.fn.<Function>`,
and every other Python logger at INFO, the level the functions run at (the stack's `reimagine_emulator`
delivery lines among them), via caplog; plus anything written to this process's stdout or stderr
(capfd). Then no email address and nothing token-like may appear. The module runs the Hugging Face
provider against the stand-in (tests/fixtures/hf_standin.py) with a token-shaped token, including an
error answer that echoes the token back.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fixtures import images
from tests.fixtures.hf_standin import HfStandin
from tests.integration.conftest import Pipeline, PipelineConfig

pytestmark = pytest.mark.integration

EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
TOKEN = "hf_FakeTokenForTheLogTest0123456789"
TOKEN_LIKE = [
    re.compile(r"\bhf_[A-Za-z0-9]{8,}"),  # Hugging Face tokens
    re.compile(r"Bearer\s+\S+", re.IGNORECASE),
    re.compile(r"X-Amz-Signature|x-amz-security-token|\"signature\"", re.IGNORECASE),  # presigned URLs, POST policies
]
CAPTION_MODEL = "Qwen/Qwen3-VL-8B-Instruct"
IMAGE_MODEL = "black-forest-labs/FLUX.1-schnell"


@pytest.fixture(scope="module")
def standin() -> Iterator[HfStandin]:
    with HfStandin.serving(CAPTION_MODEL, IMAGE_MODEL, token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def pipeline_config(standin: HfStandin) -> PipelineConfig:
    """Provider=huggingface against the stand-in; the token in the operator's HF_TOKEN, stored by the
    stack as the SecureString the template names, and read from there by the functions."""
    return PipelineConfig(
        parameters={
            "Provider": "huggingface",
            "HfRouterUrl": standin.url,
            "HfHubUrl": standin.url,
            "HfCaptionModels": CAPTION_MODEL,
            "HfImageModels": IMAGE_MODEL,
        },
        environ={"HF_TOKEN": TOKEN},
    )


@dataclass
class Capture:
    """Where everything logged during one test goes."""

    fds: pytest.CaptureFixture[str]  # anything written to this process's stdout or stderr
    records: pytest.LogCaptureFixture  # the environments' output and every Python logger at INFO

    def text(self) -> str:
        out, err = self.fds.readouterr()
        lines = [
            f"{r.name} {r.levelname} {r.getMessage()} {json.dumps(_extras(r), default=str)}"
            for r in self.records.records
        ]
        return "\n".join([out, err, *lines])


def _extras(record: logging.LogRecord) -> dict:
    """Fields passed with `extra=`: a log formatter may print them even if the message does not."""
    standard = set(vars(logging.makeLogRecord({})))
    return {k: v for k, v in vars(record).items() if k not in standard}


def _assert_clean(logged: str, *, addresses: list[str]) -> None:
    # The capture really holds what the environments printed and the stack's delivery lines.
    assert '"service":"reimagine"' in logged and "REPORT RequestId: " in logged
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
    yield Capture(capfd, caplog)


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


def test_a_hugging_face_run_never_logs_its_token(pipeline: Pipeline, standin: HfStandin, logged: Capture) -> None:
    # Given the stand-in serving both models to whoever sends the token
    standin.echo_credentials = False
    seen = len(standin.calls)
    done = pipeline.submit(images.jpeg((96, 64)), "image/jpeg", email="hf.ok.person@example.com")
    record = pipeline.status(done)
    assert (record["status"], record["caption_provider"]) == ("COMPLETED", "huggingface")
    # The token really went out: the stand-in answers only calls that carry it.
    assert ("/v1/chat/completions", 200) in {(call.path, call.status) for call in standin.calls[seen:]}

    # When an error answer quotes the credentials back
    standin.echo_credentials = True
    seen = len(standin.calls)
    try:
        refused = pipeline.submit(images.jpeg((96, 64)), "image/jpeg", email="hf.refused.person@example.com")
    finally:
        standin.echo_credentials = False
    assert ("/v1/chat/completions", 401) in {(call.path, call.status) for call in standin.calls[seen:]}
    record = pipeline.status(refused)
    # Then it does not carry them into logs, record or mail
    assert (record["status"], record["error"]["code"]) == ("FAILED", "PROVIDER_REJECTED")
    assert TOKEN not in json.dumps(record)
    assert TOKEN not in pipeline.mail_to("hf.refused.person@example.com")[0].file.read_text()

    text = logged.text()
    assert TOKEN not in text
    _assert_clean(text, addresses=["hf.ok.person@example.com", "hf.refused.person@example.com"])
