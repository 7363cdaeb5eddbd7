"""`reimagine doctor`: one line per check, exit 1 when any fails, never a traceback.

Hugging Face against the stand-in Hub and router; SES, SSM and CloudFormation on moto (botocore's
Stubber where moto does not implement the call); Bedrock's control plane through botocore's Stubber.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
import responses
from botocore.stub import Stubber
from moto import mock_aws

from reimagine_tools.cli import main
from reimagine_tools.doctor import (
    FAIL,
    NO_AWS,
    OK,
    PARAMETERS,
    SKIPPED,
    WARN,
    Check,
    Configuration,
    Doctor,
    aws_clients,
    configuration,
    report,
    stack_parameters,
)
from tests.fixtures.hf_standin import HfStandin

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SENDER = "reimagine@example.com"


def _config(caption: dict[str, str] | None = None, generate: dict[str, str] | None = None) -> Configuration:
    return Configuration(
        caption={"PROVIDER": "offline", **(caption or {})},
        generate={"PROVIDER": "offline", **(generate or {})},
        notify={"SENDER_EMAIL": SENDER},
        source="test",
    )


def _line(checks: list[Check], subject: str) -> tuple[str, str]:
    (found,) = [c for c in checks if c.subject == subject]
    return found.status, found.detail


# Hugging Face ------------------------------------------------------------------------------------------


@pytest.fixture
def standin() -> Iterator[HfStandin]:
    with HfStandin.serving("b", "d", retired_models=("a",)) as server:
        yield server


def _hf(standin: HfStandin, caption_models: str = "a,b", image_models: str = "c,d") -> Configuration:
    urls = {"HF_ROUTER_URL": standin.url, "HF_TOKEN_PARAMETER": "/reimagine/huggingface/token"}
    return _config(
        {"PROVIDER": "huggingface", "HF_CAPTION_MODELS": caption_models, **urls},
        {"PROVIDER": "huggingface", "HF_IMAGE_MODELS": image_models, "HF_HUB_URL": standin.url, **urls},
    )


def test_a_chain_with_nothing_served_fails_naming_its_models(standin: HfStandin):
    checks = Doctor(_hf(standin, image_models="c,x"), aws=None, environ={"HF_TOKEN": standin.token}).run()
    assert _line(checks, "HfImageModels") == (FAIL, "no model of the chain is available (tried c, x)")


def test_the_exit_status_is_1_when_a_chain_has_nothing_served(standin: HfStandin):
    checks = Doctor(_hf(standin, caption_models="a"), aws=None, environ={"HF_TOKEN": standin.token}).run()
    assert report(checks, lambda line: None) == 1


def test_chains_whose_second_models_are_served_pass(standin: HfStandin):
    checks = Doctor(_hf(standin), aws=None, environ={"HF_TOKEN": standin.token}).run()
    assert report(checks, lambda line: None) == 0


def test_an_unserved_model_ahead_of_a_served_one_is_a_warning_saying_what_the_hub_lists(standin: HfStandin):
    checks = Doctor(_hf(standin), aws=None, environ={"HF_TOKEN": standin.token}).run()
    assert _line(checks, "HfCaptionModels a") == (
        WARN,
        "not served for conversational (Hub lists hyperbolic:conversational:live, hyperbolic:text-to-image:live)",
    )


def test_a_served_model_names_its_provider(standin: HfStandin):
    checks = Doctor(_hf(standin), aws=None, environ={"HF_TOKEN": standin.token}).run()
    assert _line(checks, "HfImageModels d") == (OK, "served for text-to-image by nscale")


def test_the_token_is_accepted_and_its_user_named(standin: HfStandin):
    checks = Doctor(_hf(standin), aws=None, environ={"HF_TOKEN": standin.token}).run()
    assert _line(checks, "Hugging Face token") == (OK, f"from HF_TOKEN, accepted by {standin.url} (user standin-user)")


def test_a_refused_token_fails(standin: HfStandin):
    checks = Doctor(_hf(standin), aws=None, environ={"HF_TOKEN": "hf_wrong"}).run()
    assert _line(checks, "Hugging Face token") == (FAIL, f"from HF_TOKEN, refused by {standin.url} (HTTP 401)")


def test_no_token_and_no_aws_fails_saying_where_it_looked(standin: HfStandin):
    checks = Doctor(_hf(standin), aws=None, environ={}).run()
    assert _line(checks, "Hugging Face token") == (
        FAIL,
        f"HF_TOKEN is not set, and SSM /reimagine/huggingface/token (HfTokenParameter) cannot be read: {NO_AWS}",
    )


def test_the_token_is_read_from_ssm_when_hf_token_is_unset(standin: HfStandin):
    with mock_aws():
        boto3.client("ssm").put_parameter(Name="/reimagine/huggingface/token", Value=standin.token, Type="SecureString")
        checks = Doctor(_hf(standin), aws=boto3.client, environ={}).run()
    assert _line(checks, "Hugging Face token")[1].startswith("from SSM /reimagine/huggingface/token, accepted")


def test_the_token_is_never_printed(standin: HfStandin):
    lines: list[str] = []
    report(Doctor(_hf(standin), aws=None, environ={"HF_TOKEN": standin.token}).run(), lines.append)
    assert not [line for line in lines if standin.token in line]


# Bedrock -----------------------------------------------------------------------------------------------


@pytest.fixture
def bedrock() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("bedrock", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber


def _model(model_id: str, lifecycle: str = "ACTIVE") -> dict[str, Any]:
    return {
        "modelDetails": {
            "modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{model_id}",
            "modelId": model_id,
            "modelLifecycle": {"status": lifecycle},
        }
    }


def _access(model_id: str, authorization: str = "AUTHORIZED") -> dict[str, Any]:
    return {
        "modelId": model_id,
        "agreementAvailability": {"status": "AVAILABLE"},
        "authorizationStatus": authorization,
        "entitlementAvailability": "AVAILABLE",
        "regionAvailability": "AVAILABLE",
    }


def _bedrock_doctor(client: Any, caption_models: str) -> list[Check]:
    config = _config({"PROVIDER": "bedrock", "BEDROCK_CAPTION_MODELS": caption_models})
    return Doctor(config, aws=lambda service: client, environ={}).provider_checks()


def test_an_active_model_with_access_is_ok(bedrock):
    client, stubber = bedrock
    stubber.add_response(
        "get_foundation_model", _model("amazon.nova-lite-v1:0"), {"modelIdentifier": "amazon.nova-lite-v1:0"}
    )
    stubber.add_response(
        "get_foundation_model_availability", _access("amazon.nova-lite-v1:0"), {"modelId": "amazon.nova-lite-v1:0"}
    )
    checks = _bedrock_doctor(client, "amazon.nova-lite-v1:0")
    assert _line(checks, "BedrockCaptionModels amazon.nova-lite-v1:0") == (OK, "ACTIVE, access granted")


def test_an_inference_profile_is_looked_up_and_then_the_model_behind_it(bedrock):
    client, stubber = bedrock
    profile = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    base = "anthropic.claude-haiku-4-5-20251001-v1:0"
    stubber.add_response(
        "get_inference_profile",
        {
            "inferenceProfileName": "US Claude Haiku 4.5",
            "inferenceProfileArn": f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{profile}",
            "models": [{"modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{base}"}],
            "inferenceProfileId": profile,
            "status": "ACTIVE",
            "type": "SYSTEM_DEFINED",
        },
        {"inferenceProfileIdentifier": profile},
    )
    stubber.add_response("get_foundation_model", _model(base), {"modelIdentifier": base})
    stubber.add_response("get_foundation_model_availability", _access(base), {"modelId": base})
    checks = _bedrock_doctor(client, profile)
    assert _line(checks, f"BedrockCaptionModels {profile}") == (
        OK,
        "inference profile exists, ACTIVE, access granted",
    )


def test_a_legacy_model_alone_fails_its_chain(bedrock):
    client, stubber = bedrock
    old = "anthropic.claude-3-haiku-20240307-v1:0"
    stubber.add_response("get_foundation_model", _model(old, "LEGACY"), {"modelIdentifier": old})
    checks = _bedrock_doctor(client, old)
    assert (_line(checks, f"BedrockCaptionModels {old}")[0], _line(checks, "BedrockCaptionModels")) == (
        WARN,
        (FAIL, f"no model of the chain is available (tried {old})"),
    )


def test_a_model_that_is_gone_is_not_available(bedrock):
    client, stubber = bedrock
    stubber.add_client_error(
        "get_foundation_model", "ResourceNotFoundException", "The model is not found", 404, {"modelIdentifier": "x.y"}
    )
    checks = _bedrock_doctor(client, "x.y")
    assert _line(checks, "BedrockCaptionModels x.y") == (
        WARN,
        "not available (ResourceNotFoundException: The model is not found)",
    )


def test_a_model_without_access_says_which_grant_is_missing(bedrock):
    client, stubber = bedrock
    model = "amazon.nova-lite-v1:0"
    stubber.add_response("get_foundation_model", _model(model), {"modelIdentifier": model})
    stubber.add_response("get_foundation_model_availability", _access(model, "NOT_AUTHORIZED"), {"modelId": model})
    checks = _bedrock_doctor(client, model)
    assert _line(checks, f"BedrockCaptionModels {model}") == (WARN, "no access: authorizationStatus=NOT_AUTHORIZED")


def test_an_endpoint_without_bedrock_makes_the_chain_skipped_not_failed(bedrock):
    client, stubber = bedrock
    stubber.add_client_error("get_foundation_model", "InternalFailure", "not implemented", 500)
    checks = _bedrock_doctor(client, "amazon.nova-lite-v1:0")
    assert _line(checks, "BedrockCaptionModels")[0] == SKIPPED


def test_an_image_model_of_a_family_the_provider_cannot_build_is_not_usable(bedrock):
    client, _ = bedrock
    config = _config(generate={"PROVIDER": "bedrock", "BEDROCK_IMAGE_MODELS": "acme.painter-v1"})
    checks = Doctor(config, aws=lambda service: client, environ={}).provider_checks()
    assert _line(checks, "BedrockImageModels acme.painter-v1") == (
        WARN,
        "no request body for this model family in the Bedrock provider",
    )


def test_a_model_not_yet_subscribed_says_how_it_gets_subscribed(bedrock):
    client, stubber = bedrock
    model = "stability.stable-image-core-v1:1"
    unsubscribed = {**_access(model), "entitlementAvailability": "NOT_AVAILABLE"}
    stubber.add_response("get_foundation_model", _model(model), {"modelIdentifier": model})
    stubber.add_response("get_foundation_model_availability", unsubscribed, {"modelId": model})
    config = _config(generate={"PROVIDER": "bedrock", "BEDROCK_IMAGE_MODELS": model})
    checks = Doctor(config, aws=lambda service: client, environ={}).provider_checks()
    assert _line(checks, f"BedrockImageModels {model}") == (
        WARN,
        "no access: entitlementAvailability=NOT_AVAILABLE, not subscribed: the first call subscribes the account "
        "if the model's product id (on its Bedrock model card) is in BedrockMarketplaceProductIds; or open the "
        "model once in the Bedrock console playground",
    )


def test_image_models_are_looked_up_in_the_region_that_paints():
    # Given a stack whose pictures are painted in us-west-2
    painter = boto3.client("bedrock", region_name="us-west-2")
    asked: list[tuple[str, ...]] = []

    def aws(*where: str) -> Any:
        asked.append(where)
        return painter

    model = "stability.stable-image-core-v1:1"
    config = _config(
        generate={"PROVIDER": "bedrock", "BEDROCK_IMAGE_MODELS": model, "BEDROCK_IMAGE_REGION": "us-west-2"}
    )
    with Stubber(painter) as stubber:
        stubber.add_response("get_foundation_model", _model(model), {"modelIdentifier": model})
        stubber.add_response("get_foundation_model_availability", _access(model), {"modelId": model})
        checks = Doctor(config, aws=aws, environ={}).provider_checks()
    assert (asked, _line(checks, f"BedrockImageModels {model}")) == (
        [("bedrock", "us-west-2")],
        (OK, "ACTIVE, access granted (in us-west-2)"),
    )


def test_aws_clients_are_made_for_the_stack_region_unless_another_is_asked_for():
    aws = aws_clients("us-east-1", None)
    assert (aws("bedrock").meta.region_name, aws("bedrock", "us-west-2").meta.region_name) == (
        "us-east-1",
        "us-west-2",
    )


def test_bedrock_without_an_aws_endpoint_is_skipped():
    config = _config({"PROVIDER": "bedrock", "BEDROCK_CAPTION_MODELS": "amazon.nova-lite-v1:0"})
    checks = Doctor(config, aws=None, environ={}).run()
    assert _line(checks, "BedrockCaptionModels")[0] == SKIPPED


# OpenAI-compatible ---------------------------------------------------------------------------------------

MODELS_LIST = {
    "object": "list",
    "data": [
        {"id": "gpt-4.1-mini", "object": "model", "created": 1744316542, "owned_by": "system"},
        {"id": "gpt-image-1", "object": "model", "created": 1745517030, "owned_by": "system"},
    ],
}


def _openai(caption_models: str, key_parameter: str = "") -> Configuration:
    return _config(
        {
            "PROVIDER": "openai",
            "OPENAI_BASE_URL": "https://api.openai.com",
            "OPENAI_CAPTION_MODELS": caption_models,
            "OPENAI_KEY_PARAMETER": key_parameter,
        }
    )


@responses.activate
def test_a_model_listed_by_v1_models_is_ok():
    responses.get("https://api.openai.com/v1/models", json=MODELS_LIST)
    checks = Doctor(_openai("gpt-4.1-mini"), aws=None, environ={}).run()
    assert _line(checks, "OpenAiCaptionModels gpt-4.1-mini") == (OK, "listed by https://api.openai.com/v1/models")


@responses.activate
def test_a_chain_of_unlisted_models_fails():
    responses.get("https://api.openai.com/v1/models", json=MODELS_LIST)
    checks = Doctor(_openai("llava:13b"), aws=None, environ={}).run()
    assert _line(checks, "OpenAiCaptionModels") == (FAIL, "no model of the chain is available (tried llava:13b)")


@responses.activate
def test_the_key_from_openai_api_key_is_sent_as_a_bearer_token():
    listing = responses.get("https://api.openai.com/v1/models", json=MODELS_LIST)
    Doctor(_openai("gpt-4.1-mini"), aws=None, environ={"OPENAI_API_KEY": "sk-test"}).run()
    assert listing.calls[0].request.headers["Authorization"] == "Bearer sk-test"


@responses.activate
def test_a_refused_key_fails_the_chain():
    responses.get("https://api.openai.com/v1/models", status=401, json={"error": {"code": "invalid_api_key"}})
    checks = Doctor(_openai("gpt-4.1-mini"), aws=None, environ={"OPENAI_API_KEY": "sk-bad"}).run()
    assert _line(checks, "OpenAiCaptionModels") == (FAIL, "https://api.openai.com/v1/models answered HTTP 401")


# SES ---------------------------------------------------------------------------------------------------


def _ses_checks(ses: Any, sesv2: Any) -> list[Check]:
    clients = {"ses": ses, "sesv2": sesv2}
    return list(Doctor(_config(), aws=clients.__getitem__, environ={}).ses_checks())


@pytest.fixture
def ses_stubs() -> Iterator[tuple[Any, Stubber, Any, Stubber]]:
    """SES clients answered by Stubber in the service's shapes (moto lacks the sending and account calls)."""
    ses, sesv2 = boto3.client("ses"), boto3.client("sesv2")
    with Stubber(ses) as ses_stub, Stubber(sesv2) as v2_stub:
        verified = {"VerificationAttributes": {SENDER: {"VerificationStatus": "Success"}}}
        ses_stub.add_response("get_identity_verification_attributes", verified)
        yield ses, ses_stub, sesv2, v2_stub


def test_a_verified_sender_enabled_sending_and_production_access_are_ok(ses_stubs):
    ses, ses_stub, sesv2, v2_stub = ses_stubs
    ses_stub.add_response("get_account_sending_enabled", {"Enabled": True})
    v2_stub.add_response("get_account", {"ProductionAccessEnabled": True, "SendingEnabled": True})
    assert [c.status for c in _ses_checks(ses, sesv2)] == [OK, OK, OK]


def test_an_unverified_sender_fails():
    with mock_aws():
        config = Configuration(
            {"PROVIDER": "offline"}, {"PROVIDER": "offline"}, {"SENDER_EMAIL": "nobody@example.org"}, "t"
        )
        checks = Doctor(config, aws=boto3.client, environ={}).run()
    assert _line(checks, "SES sender") == (
        FAIL,
        "SenderEmail nobody@example.org is not verified (not an identity); verify it or its domain in SES",
    )


def test_a_sender_on_a_verified_domain_is_ok():
    with mock_aws():
        boto3.client("ses").verify_domain_identity(Domain="example.org")
        config = Configuration(
            {"PROVIDER": "offline"}, {"PROVIDER": "offline"}, {"SENDER_EMAIL": "me@example.org"}, "t"
        )
        checks = Doctor(config, aws=boto3.client, environ={}).run()
    assert _line(checks, "SES sender")[0] == OK


def test_the_sandbox_is_a_warning(ses_stubs):
    ses, ses_stub, sesv2, v2_stub = ses_stubs
    ses_stub.add_response("get_account_sending_enabled", {"Enabled": True})
    v2_stub.add_response("get_account", {"ProductionAccessEnabled": False, "SendingEnabled": True})
    assert _line(_ses_checks(ses, sesv2), "SES account") == (
        WARN,
        "sandbox: mail goes only to verified addresses; request production access",
    )


def test_disabled_sending_fails(ses_stubs):
    ses, ses_stub, sesv2, v2_stub = ses_stubs
    ses_stub.add_response("get_account_sending_enabled", {"Enabled": False})
    v2_stub.add_response("get_account", {"ProductionAccessEnabled": True, "SendingEnabled": True})
    assert _line(_ses_checks(ses, sesv2), "SES sending")[0] == FAIL


def test_an_endpoint_that_does_not_implement_a_call_makes_it_skipped():
    with mock_aws():  # moto has no GetAccountSendingEnabled
        checks = Doctor(_config(), aws=boto3.client, environ={}).run()
    assert _line(checks, "SES sending")[0] == SKIPPED


def test_without_aws_ses_is_skipped_and_says_why():
    checks = Doctor(_config(), aws=None, environ={}).run()
    assert _line(checks, "SES") == (SKIPPED, f"sender, sending and sandbox not checked: {NO_AWS}")


# Where the configuration comes from ---------------------------------------------------------------------

STRING = {"Type": "String"}
TOPIC = {"Topic": {"Type": "AWS::SNS::Topic"}}  # a stack needs one resource


def test_a_deployed_stacks_parameters_are_read_for_the_declared_ones():
    body = json.dumps({"Parameters": {"SenderEmail": STRING, "Old": STRING}, "Resources": TOPIC})
    with mock_aws():
        cloudformation = boto3.client("cloudformation")
        cloudformation.create_stack(
            StackName="reimagine-prod",
            TemplateBody=body,
            Parameters=[
                {"ParameterKey": "SenderEmail", "ParameterValue": "ops@example.com"},
                {"ParameterKey": "Old", "ParameterValue": "x"},
            ],
        )
        assert stack_parameters(cloudformation, "reimagine-prod", TEMPLATE) == {"SenderEmail": "ops@example.com"}


def test_the_cli_with_the_template_defaults_and_no_aws_verifies_nothing_and_says_so(
    capsys: pytest.CaptureFixture[str],
):
    # Given the offline defaults (nothing to ask a provider) and no AWS to ask about SES
    status = main(["doctor", "-t", str(TEMPLATE)])
    out = capsys.readouterr().out
    # Then SES is skipped, and the run is not a pass
    assert "skipped  SES: sender, sending and sandbox not checked" in out
    assert (status, out.splitlines()[-1].startswith("doctor: nothing was verified")) == (1, True)


def test_the_cli_refuses_an_unknown_override_in_one_line(capsys: pytest.CaptureFixture[str]):
    status = main(["doctor", "-t", str(TEMPLATE), "--parameter-overrides", "NoSuch=1"])
    assert (status, capsys.readouterr().err) == (2, "reimagine: unknown parameters: NoSuch\n")


def test_the_cli_reads_a_stack_from_cloudformation(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    body = json.dumps({"Parameters": {"SenderEmail": STRING}, "Resources": TOPIC})
    with mock_aws():
        boto3.client("cloudformation").create_stack(
            StackName="reimagine-prod",
            TemplateBody=body,
            Parameters=[{"ParameterKey": "SenderEmail", "ParameterValue": "ops@example.com"}],
        )
        boto3.client("ses").verify_email_identity(EmailAddress="ops@example.com")
        main(["doctor", "-t", str(TEMPLATE), "--stack", "reimagine-prod"])
    assert "ok       SES sender: ops@example.com is verified (address)" in capsys.readouterr().out


# Never green when nothing was checked; unreachable services fail alike -----------------------------------


def test_a_run_whose_checks_were_all_skipped_exits_1_saying_nothing_was_verified():
    # Given Bedrock as the provider and no AWS endpoint: every check is skipped
    config = _config(
        {"PROVIDER": "bedrock", "BEDROCK_CAPTION_MODELS": "amazon.nova-lite-v1:0"},
        {"PROVIDER": "bedrock", "BEDROCK_IMAGE_MODELS": "amazon.nova-canvas-v1:0"},
    )
    lines: list[str] = []
    # When the report is made
    status = report(Doctor(config, aws=None, environ={}).run(), lines.append)
    # Then it is a failure, and its last line says nothing was verified
    assert (status, lines[-1].split(":")[:2]) == (1, ["doctor", " nothing was verified"])


def test_a_run_that_verified_something_and_skipped_the_rest_passes():
    checks = [Check(OK, "SES sender", "verified"), Check(SKIPPED, "SES sending", "not implemented")]
    assert report(checks, lambda line: None) == 0


def _closed_port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_an_unreachable_hub_fails_the_chain_in_one_line_of_ours():
    # Given a Hub that does not answer
    hub = _closed_port()
    urls = {"HF_ROUTER_URL": hub, "HF_HUB_URL": hub, "HF_TOKEN_PARAMETER": ""}
    config = _config(generate={"PROVIDER": "huggingface", "HF_IMAGE_MODELS": "c,d", **urls})
    # When the chain is checked
    checks = Doctor(config, aws=None, environ={"HF_TOKEN": "hf_x"}).provider_checks()
    # Then the chain fails (as an unreachable OpenAI-compatible server does), naming the parameter
    assert _line(checks, "HfImageModels") == (FAIL, f"the Hub at {hub} could not be reached (ConnectionError)")


def test_an_unreachable_openai_server_fails_without_the_exception_text():
    base = _closed_port()
    config = _config({"PROVIDER": "openai", "OPENAI_BASE_URL": base, "OPENAI_CAPTION_MODELS": "m"})
    checks = Doctor(config, aws=None, environ={}).provider_checks()
    assert _line(checks, "OpenAiCaptionModels") == (FAIL, f"{base}/v1/models did not answer (could not connect)")


def test_an_unreachable_aws_endpoint_fails_the_ses_checks():
    # Given an endpoint nothing listens on
    aws = aws_clients("us-east-1", _closed_port())
    # When SES is checked, Then each check fails in one line, not skipped
    checks = list(Doctor(_config(), aws=aws, environ={}).ses_checks())
    assert {(c.status, c.detail) for c in checks} == {(FAIL, "the AWS endpoint did not answer (could not connect)")}


def test_an_unreachable_bedrock_fails_its_chain():
    aws = aws_clients("us-east-1", _closed_port())
    config = _config({"PROVIDER": "bedrock", "BEDROCK_CAPTION_MODELS": "amazon.nova-lite-v1:0"})
    checks = Doctor(config, aws=aws, environ={}).provider_checks()
    assert _line(checks, "BedrockCaptionModels") == (FAIL, "Bedrock did not answer (could not connect)")


@pytest.mark.parametrize("variable", sorted(PARAMETERS))
def test_lines_name_the_template_parameter_each_setting_comes_from(variable: str):
    # Each function variable a line is about is set from the template parameter the line names.
    from tests.fixtures.template import function_env, functions, load_template

    template = load_template()
    sources = {json.dumps(function_env(template, fn).get(variable)) for fn in functions(template)} - {"null"}
    assert sources == {json.dumps({"Ref": PARAMETERS[variable]})}


# Alarms (--stack) ----------------------------------------------------------------------------------------

ALARM_STACK = json.dumps({"Resources": {"AlarmTopic": {"Type": "AWS::SNS::Topic"}}})


def _alarm_lines(subscribe: str | None) -> list[Check]:
    with mock_aws():
        cloudformation = boto3.client("cloudformation")
        cloudformation.create_stack(StackName="reimagine", TemplateBody=ALARM_STACK)
        if subscribe:
            sns, sqs = boto3.client("sns"), boto3.client("sqs")
            (topic,) = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
            queue = sqs.create_queue(QueueName="pager")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        return list(Doctor(_config(), aws=boto3.client, environ={}, stack="reimagine").alarm_checks())


def test_a_stack_whose_alarm_topic_nobody_receives_is_warned_about():
    # Given a deployed stack whose alarm topic has no subscription, When doctor --stack runs, Then it warns
    ((status, detail),) = [(c.status, c.detail) for c in _alarm_lines(subscribe=None)]
    assert (status, detail.split(":")[0].split(" ")[:4]) == (WARN, ["nobody", "is", "subscribed", "to"])


def test_a_stack_whose_alarm_topic_has_a_confirmed_subscriber_is_ok():
    ((status, detail),) = [(c.status, c.detail) for c in _alarm_lines(subscribe="sqs")]
    assert (status, detail.startswith("1 confirmed subscription(s) to arn:aws:sns:")) == (OK, True)


def test_without_a_stack_the_alarms_are_not_checked():
    assert list(Doctor(_config(), aws=None, environ={}).alarm_checks()) == []


def test_a_stack_deployed_before_the_alarm_topic_is_told_to_redeploy():
    with mock_aws():
        boto3.client("cloudformation").create_stack(
            StackName="reimagine", TemplateBody=json.dumps({"Resources": TOPIC})
        )
        checks = list(Doctor(_config(), aws=boto3.client, environ={}, stack="reimagine").alarm_checks())
    assert [(c.status, c.detail) for c in checks] == [
        (WARN, "stack reimagine has no AlarmTopic (an older template): redeploy it")
    ]


# Address confirmation ----------------------------------------------------------------------------------


def test_a_public_api_with_confirmation_off_is_warned_about() -> None:
    # Given the template (no authorizer on its API) deployed with ConfirmAddresses=false
    config = configuration(TEMPLATE, {"ConfirmAddresses": "false"})
    # When the doctor checks it
    checks = Doctor(config, aws=None).run()
    # Then it warns that anyone may have the stack mail any address
    status, detail = _line(checks, "address confirmation")
    assert (status, detail.startswith("ConfirmAddresses=false on an API anyone can call")) == (WARN, True)


def test_confirmation_off_behind_an_authorizer_is_fine() -> None:
    config = replace(_config(caption={"CONFIRM_ADDRESSES": "false"}), api_public=False)
    assert _line(Doctor(config, aws=None).run(), "address confirmation")[0] == OK


def test_the_template_default_confirms_addresses() -> None:
    checks = Doctor(configuration(TEMPLATE, {}), aws=None).run()
    assert _line(checks, "address confirmation")[0] == OK
