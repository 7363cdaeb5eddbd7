"""The Hugging Face stand-in answers in the Hub's and the router's own shapes (huggingface_hub 1.29, HF docs)."""

from __future__ import annotations

import base64
import io
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.fixtures import images
from tests.fixtures.hf_standin import HfStandin, Mapping, parse_serve, served

ROOT = Path(__file__).resolve().parents[2]
MAPPING = {"expand[]": "inferenceProviderMapping"}


@pytest.fixture
def standin() -> Iterator[HfStandin]:
    catalogue = {
        "org/chat": served("org/chat", "conversational"),
        "org/flux": served("org/flux", "text-to-image", "nscale"),
        "org/tog": served("org/tog", "text-to-image", "together"),
        "org/cpu": served("org/cpu", "text-to-image", "hf-inference"),
        "org/fal": served("org/fal", "text-to-image", "fal-ai"),
        "org/old": [Mapping("hyperbolic", "old-id", "conversational")],
    }
    with HfStandin(catalogue, token="hf_test_token") as server:
        yield server


def _auth(token: str = "hf_test_token") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


# Hub -----------------------------------------------------------------------------------------------


def test_model_info_lists_the_mapping_as_the_hub_does_today(standin: HfStandin):
    got = requests.get(f"{standin.url}/api/models/org/flux", params=MAPPING, timeout=5).json()
    assert got["inferenceProviderMapping"] == [
        {"provider": "nscale", "providerId": "standin/org/flux", "status": "live", "task": "text-to-image"}
    ]


def test_model_info_can_answer_in_the_older_dict_form(standin: HfStandin):
    standin.mapping_form = "dict"
    got = requests.get(f"{standin.url}/api/models/org/flux", params=MAPPING, timeout=5).json()
    assert got["inferenceProviderMapping"] == {
        "nscale": {"providerId": "standin/org/flux", "status": "live", "task": "text-to-image"}
    }


def test_an_unknown_model_is_404_repository_not_found(standin: HfStandin):
    response = requests.get(f"{standin.url}/api/models/org/nope", params=MAPPING, timeout=5)
    assert (response.status_code, response.json(), response.headers["X-Error-Code"]) == (
        404,
        {"error": "Repository not found"},
        "RepoNotFound",
    )


def test_whoami_names_the_token_owner(standin: HfStandin):
    got = requests.get(f"{standin.url}/api/whoami-v2", headers=_auth(), timeout=5).json()
    assert (got["type"], got["name"], got["auth"]["type"]) == ("user", "standin-user", "access_token")


def test_whoami_refuses_a_wrong_token_with_401(standin: HfStandin):
    response = requests.get(f"{standin.url}/api/whoami-v2", headers=_auth("hf_wrong"), timeout=5)
    assert (response.status_code, response.json()) == (401, {"error": "Invalid credentials in Authorization header"})


# Router: chat ----------------------------------------------------------------------------------------


def _chat(standin: HfStandin, model: str, token: str = "hf_test_token", path: str = "/v1/chat/completions"):
    data_url = "data:image/jpeg;base64," + base64.b64encode(images.jpeg((40, 30), images.BLUE)).decode()
    body = {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this photo."},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ],
            }
        ],
    }
    return requests.post(f"{standin.url}{path}", json=body, headers=_auth(token), timeout=5)


def test_chat_completion_captions_the_image_sent_and_says_it_is_a_stand_in(standin: HfStandin):
    got = _chat(standin, "org/chat").json()
    assert (got["object"], got["model"], got["choices"][0]["message"]["content"]) == (
        "chat.completion",
        "org/chat",
        "Stand-in caption by org/chat (not AI): a 40x30 JPEG picture, mostly blue in tone.",
    )


def test_chat_accepts_a_routing_policy_suffix(standin: HfStandin):
    assert _chat(standin, "org/chat:fastest").status_code == 200


def test_chat_with_a_model_only_a_retired_provider_lists_is_model_not_supported(standin: HfStandin):
    response = _chat(standin, "org/old")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "model_not_supported")


def test_chat_with_an_image_model_is_model_not_supported(standin: HfStandin):
    assert _chat(standin, "org/flux").json()["error"]["code"] == "model_not_supported"


def test_chat_without_the_token_is_401(standin: HfStandin):
    assert _chat(standin, "org/chat", token="hf_wrong").status_code == 401


def test_echoing_credentials_refuses_router_calls_quoting_the_token_back(standin: HfStandin):
    # Given the stand-in told to answer as a provider that echoes credentials in its errors
    standin.echo_credentials = True
    # When a call with the right token arrives, Then it is a 401 that repeats the header
    response = _chat(standin, "org/chat")
    assert (response.status_code, response.json()) == (
        401,
        {"error": "Invalid credentials in Authorization: Bearer hf_test_token"},
    )


def test_a_provider_chat_route_takes_the_provider_model_id(standin: HfStandin):
    response = _chat(standin, "standin/org/chat", path="/nscale/v1/chat/completions")
    assert response.json()["choices"][0]["message"]["content"].startswith("Stand-in caption by org/chat")


# Router: text-to-image ----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["nscale", "together"])
def test_openai_style_images_answer_b64_json_of_the_size_asked(standin: HfStandin, provider: str):
    model = "standin/org/flux" if provider == "nscale" else "standin/org/tog"
    body = {"model": model, "prompt": "a red boat", "response_format": "b64_json", "size": "64x48"}
    got = requests.post(f"{standin.url}/{provider}/v1/images/generations", json=body, headers=_auth(), timeout=5)
    assert _png(base64.b64decode(got.json()["data"][0]["b64_json"])).size == (64, 48)


def test_a_provider_route_refuses_a_model_it_does_not_serve_as_the_router_does(standin: HfStandin):
    body = {"model": "standin/org/tog", "prompt": "x", "response_format": "b64_json"}
    got = requests.post(f"{standin.url}/nscale/v1/images/generations", json=body, headers=_auth(), timeout=5)
    assert (got.status_code, got.json()) == (400, {"error": "Model not supported by provider nscale"})


def test_hf_inference_answers_raw_png_bytes(standin: HfStandin):
    body = {"inputs": "a red boat", "parameters": {"width": 32, "height": 32}}
    got = requests.post(f"{standin.url}/hf-inference/models/org/cpu", json=body, headers=_auth(), timeout=5)
    assert (got.headers["Content-Type"], _png(got.content).size) == ("image/png", (32, 32))


def test_fal_answers_an_image_url_that_downloads(standin: HfStandin):
    body = {"prompt": "a red boat", "image_size": {"width": 40, "height": 20}}
    got = requests.post(f"{standin.url}/fal-ai/standin/org/fal", json=body, headers=_auth(), timeout=5).json()
    assert _png(requests.get(got["images"][0]["url"], timeout=5).content).size == (40, 20)


def test_pictures_differ_by_prompt():
    from tests.fixtures.hf_standin import render_png

    assert render_png("a red boat") != render_png("a green hill")


def test_every_call_is_recorded_without_its_headers(standin: HfStandin):
    _chat(standin, "org/chat")
    assert [(c.method, c.path, c.status, c.model) for c in standin.calls] == [
        ("POST", "/v1/chat/completions", 200, "org/chat")
    ]


# Configuration ------------------------------------------------------------------------------------------


def test_serve_spec_bare_models_are_served_for_both_tasks():
    assert {(m.task, m.provider) for m in parse_serve("b")["b"]} == {
        ("conversational", "nscale"),
        ("text-to-image", "nscale"),
    }


def test_serve_spec_names_a_task_and_a_provider():
    assert parse_serve("d=text-to-image@fal-ai")["d"] == [Mapping("fal-ai", "standin/d", "text-to-image")]


def test_serve_spec_refuses_an_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'painting'"):
        parse_serve("d=painting")


def test_it_runs_by_hand_as_a_module(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    output = tmp_path / "standin.out"
    with output.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-u", "-m", "tests.fixtures.hf_standin", "--port", str(port), "--serve", "b,d"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    got = requests.get(f"http://127.0.0.1:{port}/api/models/b", params=MAPPING, timeout=2)
                    break
                except requests.ConnectionError:
                    assert process.poll() is None and time.monotonic() < deadline, output.read_text()
                    time.sleep(0.1)
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert {m["task"] for m in got.json()["inferenceProviderMapping"]} == {"conversational", "text-to-image"}
