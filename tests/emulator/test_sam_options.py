"""The local stack takes SAM's configuration options: `--parameter-overrides` and `--env-vars`, as SAM reads them."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from reimagine_emulator.cli import build_parser
from reimagine_emulator.provider_secrets import store_provider_secrets
from reimagine_tools.sam_options import EnvVars, SamOptionError, load_env_vars, parse_parameter_overrides
from reimagine_tools.template import TemplateError, read_application, template_parameters

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


# --parameter-overrides (samcli/cli/types.py CfnParameterOverridesType) -------------------------------


def test_several_key_value_words_are_each_a_parameter():
    assert parse_parameter_overrides(["Provider=huggingface", "SenderEmail=me@example.com"]) == {
        "Provider": "huggingface",
        "SenderEmail": "me@example.com",
    }


def test_one_word_may_hold_several_pairs_separated_by_spaces():
    assert parse_parameter_overrides(["A=1 B=2"]) == {"A": "1", "B": "2"}


def test_a_comma_separated_value_stays_one_value():
    assert parse_parameter_overrides(["HfCaptionModels=a,b"]) == {"HfCaptionModels": "a,b"}


def test_the_cloudformation_long_form_is_read_too():
    given = ["ParameterKey=Provider,ParameterValue=bedrock ParameterKey=Stage,ParameterValue=prod"]
    assert parse_parameter_overrides(given) == {"Provider": "bedrock", "Stage": "prod"}


def test_quotes_wrap_a_value_with_spaces_and_are_removed():
    assert parse_parameter_overrides(['Style="a vivid illustration" Other=x']) == {
        "Style": "a vivid illustration",
        "Other": "x",
    }


def test_a_backslash_escapes_a_space_in_an_unquoted_value():
    assert parse_parameter_overrides([r"Style=two\ words"]) == {"Style": "two words"}


def test_an_empty_value_in_quotes_is_kept_empty():
    assert parse_parameter_overrides(['OpenAiKeyParameter=""']) == {"OpenAiKeyParameter": ""}


def test_the_last_of_a_repeated_key_wins():
    assert parse_parameter_overrides(["Provider=offline", "Provider=huggingface"]) == {"Provider": "huggingface"}


def test_a_word_without_equals_is_refused_naming_it():
    with pytest.raises(SamOptionError, match="'huggingface' is not a valid format"):
        parse_parameter_overrides(["huggingface"])


def test_the_cli_collects_every_word_after_the_flag():
    args = build_parser().parse_args(
        ["local", "up", "--parameter-overrides", "Provider=huggingface", "HfImageModels=c,d", "--port", "0"]
    )
    assert (args.parameter_overrides, args.port) == (["Provider=huggingface", "HfImageModels=c,d"], 0)


def test_demo_takes_the_template_and_env_vars_options_too():
    args = build_parser().parse_args(["demo", "-t", "other.yaml", "--env-vars", "env.json"])
    assert (args.template, args.env_vars) == ("other.yaml", "env.json")


# Overrides reach the template -------------------------------------------------------------------------


def test_an_override_reaches_every_function_that_uses_the_parameter():
    app = read_application(TEMPLATE, parameters={"Provider": "huggingface"})
    assert {app.functions[f].environment["PROVIDER"] for f in ("CaptionFunction", "GenerateFunction")} == {
        "huggingface"
    }


def test_a_parameter_the_template_does_not_declare_is_refused():
    with pytest.raises(TemplateError, match="unknown parameters: NoSuchParameter"):
        template_parameters(TEMPLATE, {"NoSuchParameter": "x"})


def test_a_value_outside_allowed_values_is_refused():
    with pytest.raises(TemplateError, match="parameter Provider must be one of"):
        template_parameters(TEMPLATE, {"Provider": "skynet"})


def test_template_parameters_are_the_defaults_with_the_overrides_applied():
    parameters = template_parameters(TEMPLATE, {"SenderEmail": "ops@example.com"})
    assert (parameters["SenderEmail"], parameters["Provider"]) == ("ops@example.com", "offline")


# --env-vars (samcli/commands/local/lib/local_lambda.py _make_env_vars) --------------------------------


def _env_file(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "env.json"
    path.write_text(json.dumps(data))
    return path


def test_parameters_section_replaces_a_variable_in_every_function_that_declares_it(tmp_path: Path):
    env_vars = load_env_vars(_env_file(tmp_path, {"Parameters": {"MAX_ATTEMPTS": 5}}))
    app = read_application(TEMPLATE, env_vars=env_vars)
    declaring = [fn for fn in app.functions.values() if "MAX_ATTEMPTS" in fn.environment]
    assert declaring and {fn.environment["MAX_ATTEMPTS"] for fn in declaring} == {"5"}


def test_a_function_entry_wins_over_parameters_for_that_function_only(tmp_path: Path):
    env_vars = load_env_vars(
        _env_file(tmp_path, {"Parameters": {"TABLE_NAME": "everyone"}, "ApiFunction": {"TABLE_NAME": "api-only"}})
    )
    app = read_application(TEMPLATE, env_vars=env_vars)
    assert (
        app.functions["ApiFunction"].environment["TABLE_NAME"],
        app.functions["NotifyFunction"].environment["TABLE_NAME"],
    ) == (
        "api-only",
        "everyone",
    )


def test_a_variable_the_function_does_not_declare_is_not_added(tmp_path: Path):
    env_vars = load_env_vars(_env_file(tmp_path, {"ApiFunction": {"NOT_DECLARED": "x"}}))
    app = read_application(TEMPLATE, env_vars=env_vars)
    assert "NOT_DECLARED" not in app.functions["ApiFunction"].environment


def test_a_function_can_be_named_by_its_physical_name_too():
    env_vars = EnvVars({"A": "x"}, {"reimagine-fn": {"B": "y"}})
    assert env_vars.for_function("Fn", "reimagine-fn") == {"A": "x", "B": "y"}


def test_booleans_become_lower_case_and_null_becomes_blank(tmp_path: Path):
    env_vars = load_env_vars(_env_file(tmp_path, {"Fn": {"ON": True, "NONE": None, "N": 3}}))
    assert env_vars.for_function("Fn") == {"ON": "true", "NONE": "", "N": "3"}


def test_a_file_that_is_not_json_is_refused_naming_it(tmp_path: Path):
    path = tmp_path / "env.json"
    path.write_text("PROVIDER=huggingface")
    with pytest.raises(SamOptionError, match="is not JSON"):
        load_env_vars(path)


def test_a_section_that_is_not_an_object_is_refused_naming_it(tmp_path: Path):
    with pytest.raises(SamOptionError, match=r"'ApiFunction' .* must be an object"):
        load_env_vars(_env_file(tmp_path, {"ApiFunction": "PROVIDER=x"}))


def test_a_missing_file_is_refused_naming_it(tmp_path: Path):
    with pytest.raises(SamOptionError, match=r"cannot read .*missing\.json"):
        load_env_vars(tmp_path / "missing.json")


# Provider keys from the environment --------------------------------------------------------------------


def test_hf_token_is_stored_as_the_securestring_the_template_names():
    parameters = template_parameters(TEMPLATE)
    with mock_aws():
        ssm = boto3.client("ssm")
        stored = store_provider_secrets(parameters, ssm, {"HF_TOKEN": "hf_secret"})
        got = ssm.get_parameter(Name=parameters["HfTokenParameter"], WithDecryption=True)["Parameter"]
    assert (stored, got["Type"], got["Value"]) == ([parameters["HfTokenParameter"]], "SecureString", "hf_secret")


def test_nothing_is_stored_when_no_key_is_set():
    with mock_aws():
        ssm = boto3.client("ssm")
        stored = store_provider_secrets(template_parameters(TEMPLATE), ssm, {})
        assert (stored, ssm.describe_parameters()["Parameters"]) == ([], [])


@pytest.mark.parametrize(
    "words",
    [
        ("A=1", "B=2"),
        ('S="a b" O=x',),
        (r"S=two\ words",),
        ("ParameterKey=A,ParameterValue=x ParameterKey=B,ParameterValue=y",),
        ("A='q' B=a=b",),
    ],
)
def test_overrides_mean_what_they_mean_to_sam_cli_itself(words):
    sam_types = pytest.importorskip("samcli.cli.types", reason="aws-sam-cli is installed by `make .venv/.installed`")
    assert parse_parameter_overrides(words) == sam_types.CfnParameterOverridesType().convert(words, None, None)


# Through the running stack ------------------------------------------------------------------------------


def test_the_running_stack_takes_template_overrides_env_vars_and_the_hf_token(monkeypatch: pytest.MonkeyPatch):
    from reimagine_emulator.runner import StackConfig, running_stack

    monkeypatch.setenv("HF_TOKEN", "hf_from_the_shell")
    config = StackConfig(
        template=TEMPLATE,
        parameters={"SenderEmail": "ops@example.com"},
        env_vars=EnvVars(per_function={"NotifyFunction": {"SENDER_EMAIL": "env@example.com"}}),
    )
    with running_stack(port=0, config=config) as running:
        app = running.stack.app
        assert app is not None
        stored = running.stack.client("ssm").get_parameter(Name=app.parameters["HfTokenParameter"], WithDecryption=True)
        seen = (app.parameters["SenderEmail"], app.functions["NotifyFunction"].environment["SENDER_EMAIL"])
    assert (seen, stored["Parameter"]["Value"]) == (("ops@example.com", "env@example.com"), "hf_from_the_shell")


def test_storing_the_token_logs_the_parameter_name_and_never_the_value(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    from reimagine_emulator.runner import StackConfig, running_stack

    monkeypatch.setenv("HF_TOKEN", "hf_NeverLogThisToken0123")
    with caplog.at_level("INFO", logger="reimagine_emulator"), running_stack(port=0, config=StackConfig(TEMPLATE)):
        pass
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "SecureString /reimagine/huggingface/token" in logged
    assert "hf_NeverLogThisToken0123" not in logged
