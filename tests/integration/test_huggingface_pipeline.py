"""The whole pipeline with Provider=huggingface against a stand-in Hub and router that serve only `b` and `d`.

The caption chain is `a,b` (the Hub lists `a` only on a provider the router no longer has) and the
image chain `c,d` (`c` is unknown to the Hub), so each step gets to COMPLETED through its second
model. The token is in the environment as HF_TOKEN, as an operator has it; the stack stores it as
the SecureString the template names and the functions read it from there, as on AWS.
"""

from __future__ import annotations

import email
import io
from collections.abc import Iterator
from email import policy

import pytest
import requests
from PIL import Image

from tests.fixtures.hf_standin import HfStandin
from tests.integration.conftest import SAMPLE_PHOTO, Pipeline, PipelineConfig

pytestmark = pytest.mark.integration

ADDRESS = "hf-chain@example.com"


@pytest.fixture(scope="module")
def standin() -> Iterator[HfStandin]:
    with HfStandin.serving("b", "d", retired_models=("a",)) as server:
        yield server


@pytest.fixture(scope="module")
def pipeline_config(standin: HfStandin) -> PipelineConfig:
    return PipelineConfig(
        parameters={
            "Provider": "huggingface",
            "HfRouterUrl": standin.url,
            "HfHubUrl": standin.url,
            "HfCaptionModels": "a,b",
            "HfImageModels": "c,d",
        },
        environ={"HF_TOKEN": standin.token},
    )


@pytest.fixture(scope="module")
def finished(pipeline: Pipeline) -> dict:
    """One photo, submitted once for the module; its record once the pipeline is done with it."""
    request_id = pipeline.submit(SAMPLE_PHOTO.read_bytes(), "image/jpeg", email=ADDRESS)
    pipeline.stack.drain()  # the email goes out after COMPLETED
    return pipeline.status(request_id)


def test_the_request_completes_through_the_second_model_of_each_chain(finished: dict):
    assert (finished["status"], finished["caption_model"], finished["image_model"]) == ("COMPLETED", "b", "d")


def test_the_caption_is_the_stand_ins_measure_of_the_photo_sent(finished: dict):
    assert finished["caption"].startswith("Stand-in caption by b (not AI): a ")


def test_the_result_is_the_stand_ins_picture(pipeline: Pipeline, finished: dict):
    downloaded = requests.get(finished["result"]["url"], timeout=30)
    with Image.open(io.BytesIO(downloaded.content)) as picture:
        assert picture.format == "PNG"


def test_one_email_names_both_models(pipeline: Pipeline, finished: dict):
    mails = pipeline.mail_to(ADDRESS)
    assert len(mails) == 1
    message = email.message_from_bytes(mails[0].file.read_bytes(), policy=policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "an AI model (b)" in text
    assert "painted by d" in text


def test_the_token_was_stored_as_the_securestring_the_template_names(
    pipeline: Pipeline, standin: HfStandin, finished: dict
):
    name = pipeline.app.parameters["HfTokenParameter"]
    stored = pipeline.stack.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert (stored["Type"], stored["Value"]) == ("SecureString", standin.token)


def test_the_unserved_models_were_tried_first_and_refused(standin: HfStandin, finished: dict):
    refused = sorted({(c.path, c.status) for c in standin.calls if c.status >= 400})
    assert refused == [("/api/models/c", 404), ("/v1/chat/completions", 400)]
