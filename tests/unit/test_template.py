"""Infrastructure tests: the properties of template.yaml that the product relies on.

The template is the single description of the wiring (AWS, LocalStack and the local stack all
read it), so what matters about it is asserted here rather than trusted: triggers, filters,
failure handling, encryption and public access, least privilege, and that the sample events in
events/ are what these triggers would deliver.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    DynamoDBStreamModel,
    EventBridgeModel,
    S3Model,
)
from pydantic import BaseModel

from reimagine.config import Settings
from reimagine.records import STATUS_INDEX, StuckCandidate
from tests.unit.template_helpers import (
    PSEUDO,
    ROOT,
    TEMPLATE,
    as_list,
    function_env,
    load_template,
    props,
    resources,
    statements,
    sub,
)

EVENTS = ROOT / "events"
BIN = Path(sys.executable).parent

FUNCTIONS = ("ApiFunction", "CaptionFunction", "GenerateFunction", "NotifyFunction", "SweeperFunction")
REQUEST_ID = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"

# The shared contract, restated on purpose: a change to either side must show up here.
GENERATE_FILTER = {"dynamodb": {"NewImage": {"status": {"S": ["CAPTIONED"]}}}}
NOTIFY_FILTER = {
    "dynamodb": {
        "NewImage": {
            "status": {"S": ["COMPLETED", "FAILED"]},
            "notified_at": {"S": [{"exists": False}]},
        }
    }
}
ROUTES = {
    ("POST", "/requests"),
    ("GET", "/requests/{id}"),
    ("GET", "/requests/{id}/result"),
    ("GET", "/openapi.json"),
    ("GET", "/"),
}
HANDLERS = {
    "ApiFunction": "reimagine.handlers.api.handler",
    "CaptionFunction": "reimagine.handlers.caption.handler",
    "GenerateFunction": "reimagine.handlers.generate.handler",
    "NotifyFunction": "reimagine.handlers.notify.handler",
    "SweeperFunction": "reimagine.handlers.sweeper.handler",
}
# Least privilege, stated as the exact set of allowed actions per function.
ALLOWED_ACTIONS = {
    "ApiFunction": {
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "s3:PutObject",
        "s3:GetObject",
        "ssm:GetParameter",
    },
    "CaptionFunction": {
        "s3:GetObject",
        "s3:ListBucket",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "ssm:GetParameter",
        "bedrock:InvokeModel",
        "sqs:SendMessage",
    },
    "GenerateFunction": {
        "s3:PutObject",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        "ssm:GetParameter",
        "bedrock:InvokeModel",
        "sqs:SendMessage",
    },
    "NotifyFunction": {
        "s3:GetObject",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        "ses:SendEmail",
        "ses:SendRawEmail",
        "sqs:SendMessage",
    },
    "SweeperFunction": {"dynamodb:Query", "dynamodb:UpdateItem"},
}
# Environment each function reads (on top of the Globals).
REQUIRED_ENV = {
    "ApiFunction": {
        "UPLOADS_BUCKET",
        "RESULTS_BUCKET",
        "MAX_UPLOAD_BYTES",
        "UPLOAD_URL_TTL_SECONDS",
        "RESULT_URL_TTL_SECONDS",
        "RECORD_TTL_DAYS",
        "DAILY_QUOTA_PER_EMAIL",
        "QUOTA_SALT",
        "QUOTA_KEY_PARAMETER",
    },
    "CaptionFunction": {
        "PROVIDER",
        "UPLOADS_BUCKET",
        "MAX_IMAGE_PIXELS",
        "CAPTION_MAX_SIDE",
        "CAPTION_JPEG_QUALITY",
        "MAX_ATTEMPTS",
        "HF_TOKEN_PARAMETER",
        "HF_BASE_URL",
        "HF_CAPTION_MODEL",
        "HF_CAPTION_ROUTE",
        "BEDROCK_CAPTION_MODEL",
    },
    "GenerateFunction": {
        "PROVIDER",
        "RESULTS_BUCKET",
        "GENERATION_STYLE",
        "RESULT_SIZE",
        "MAX_ATTEMPTS",
        "HF_TOKEN_PARAMETER",
        "HF_BASE_URL",
        "HF_IMAGE_MODEL",
        "BEDROCK_IMAGE_MODEL",
    },
    "NotifyFunction": {"RESULTS_BUCKET", "RESULT_URL_TTL_SECONDS", "SENDER_EMAIL", "API_BASE_URL"},
    "SweeperFunction": {"STUCK_AFTER_SECONDS", "MAX_REDRIVES", "SWEEP_MAX_ITEMS"},
}
GLOBAL_ENV = {"TABLE_NAME", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL"}


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def events_of(template: dict[str, Any], function: str, kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: event["Properties"]
        for name, event in props(template, function).get("Events", {}).items()
        if event["Type"] == kind
    }


def matches(pattern: Any, value: Any) -> bool:
    """Lambda event filtering, the subset this project uses: nested keys, literal lists, exists."""
    if isinstance(pattern, dict):
        node = value if isinstance(value, dict) else {}
        return all(matches(sub_pattern, node.get(key)) for key, sub_pattern in pattern.items())
    assert isinstance(pattern, list), pattern
    for option in pattern:
        if isinstance(option, dict):
            assert set(option) == {"exists"}, f"matcher does not know {option}"
            if option["exists"] is (value is not None):
                return True
        elif value is not None and option == value:
            return True
    return False


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def stream_filter(template: dict[str, Any], function: str) -> dict[str, Any]:
    (event,) = events_of(template, function, "DynamoDB").values()
    (only,) = event["FilterCriteria"]["Filters"]
    return json.loads(only["Pattern"])


# ---------------------------------------------------------------- functions


def test_functions_share_runtime_architecture_code_and_tracing(template: dict[str, Any]) -> None:
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.13"
    assert glob["Architectures"] == ["arm64"]
    assert glob["CodeUri"] == "functions/"
    assert glob["Tracing"] == "Active"
    assert set(resources(template, "AWS::Serverless::Function")) == set(FUNCTIONS)
    for name in FUNCTIONS:
        fn = props(template, name)
        assert fn["Handler"] == HANDLERS[name]
        assert not {"Runtime", "Architectures", "CodeUri"} & set(fn), f"{name} overrides the Globals"


def test_heavier_functions_get_more_memory_and_time(template: dict[str, Any]) -> None:
    assert props(template, "CaptionFunction")["MemorySize"] >= 1024
    assert props(template, "CaptionFunction")["Timeout"] >= 60
    assert props(template, "GenerateFunction")["Timeout"] >= 120
    # API Gateway stops waiting for an integration after 30 seconds.
    assert props(template, "ApiFunction")["Timeout"] < 30


def test_every_route_is_served_by_the_api_function(template: dict[str, Any]) -> None:
    api_events = events_of(template, "ApiFunction", "HttpApi")
    assert {(e["Method"], e["Path"]) for e in api_events.values()} == ROUTES
    assert all(e["ApiId"] == {"Ref": "HttpApi"} for e in api_events.values())
    for name in FUNCTIONS[1:]:
        assert not events_of(template, name, "HttpApi"), f"{name} must not serve HTTP"


def test_http_api_is_throttled_and_cors_comes_from_the_parameter(template: dict[str, Any]) -> None:
    api = props(template, "HttpApi")
    assert template["Resources"]["HttpApi"]["Type"] == "AWS::Serverless::HttpApi"
    assert api["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ThrottlingRateLimit"},
    }
    assert api["CorsConfiguration"]["AllowOrigins"] == {"Ref": "AllowedOrigins"}


def test_caption_runs_on_every_new_upload_and_parks_failures(template: dict[str, Any]) -> None:
    (upload,) = events_of(template, "CaptionFunction", "S3").values()
    assert upload["Bucket"] == {"Ref": "UploadsBucket"}
    assert upload["Events"] == "s3:ObjectCreated:*"
    assert upload["Filter"] == {"S3Key": {"Rules": [{"Name": "prefix", "Value": "uploads/"}]}}
    invoke = props(template, "CaptionFunction")["EventInvokeConfig"]
    assert invoke["MaximumRetryAttempts"] == 2
    assert 60 <= invoke["MaximumEventAgeInSeconds"] <= 21600
    assert invoke["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["FailureQueue", "Arn"]},
    }


@pytest.mark.parametrize(
    ("function", "contract"), [("GenerateFunction", GENERATE_FILTER), ("NotifyFunction", NOTIFY_FILTER)]
)
def test_stream_consumers_filter_exactly_as_the_contract_says(
    template: dict[str, Any], function: str, contract: dict[str, Any]
) -> None:
    assert stream_filter(template, function) == contract


@pytest.mark.parametrize("function", ["GenerateFunction", "NotifyFunction"])
def test_stream_consumers_report_partial_failures_and_park_poison_records(
    template: dict[str, Any], function: str
) -> None:
    (stream,) = events_of(template, function, "DynamoDB").values()
    assert stream["Stream"] == {"Fn::GetAtt": ["RequestsTable", "StreamArn"]}
    assert stream["StartingPosition"] == "LATEST"
    assert stream["BatchSize"] == 10
    assert 0 <= stream["MaximumBatchingWindowInSeconds"] <= 5
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["BisectBatchOnFunctionError"] is True
    assert stream["MaximumRetryAttempts"] == 3
    assert 60 <= stream["MaximumRecordAgeInSeconds"] <= 604800
    assert stream["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["FailureQueue", "Arn"]},
    }


def test_log_groups_keep_logs_for_the_configured_days(template: dict[str, Any]) -> None:
    groups = {
        res["Properties"]["LogGroupName"]["Fn::Sub"]: res["Properties"]
        for res in resources(template, "AWS::Logs::LogGroup").values()
    }
    for name in FUNCTIONS:
        group = groups[f"/aws/lambda/${{{name}}}"]
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


# ---------------------------------------------------------------- storage


@pytest.mark.parametrize(
    ("bucket", "retention"), [("UploadsBucket", "UploadRetentionDays"), ("ResultsBucket", "ResultRetentionDays")]
)
def test_buckets_are_private_encrypted_expiring_and_tls_only(
    template: dict[str, Any], bucket: str, retention: str
) -> None:
    b = props(template, bucket)
    assert b["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (rule,) = b["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert b["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    (lifecycle,) = b["LifecycleConfiguration"]["Rules"]
    assert lifecycle["Status"] == "Enabled"
    assert lifecycle["ExpirationInDays"] == {"Ref": retention}
    assert lifecycle["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1

    (policy,) = [
        p["Properties"]
        for p in resources(template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    deny = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(
        s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        and s["Principal"] == "*"
        and s["Action"] == "s3:*"
        and s["Resource"] == [{"Fn::GetAtt": [bucket, "Arn"]}, {"Fn::Sub": f"${{{bucket}.Arn}}/*"}]
        for s in deny
    ), policy


def test_buckets_are_named_from_the_stack_and_referred_to_by_that_name(template: dict[str, Any]) -> None:
    uploads = sub(props(template, "UploadsBucket")["BucketName"])
    results = sub(props(template, "ResultsBucket")["BucketName"])
    assert uploads == "reimagine-uploads-123456789012-us-east-1"
    assert results == "reimagine-results-123456789012-us-east-1"
    for name in FUNCTIONS:
        env = function_env(template, name)
        for var, bucket in (("UPLOADS_BUCKET", uploads), ("RESULTS_BUCKET", results)):
            if var in env:
                assert sub(env[var]) == bucket
        # A !Ref/!GetAtt to a bucket outside the S3 event would close the notification cycle.
        without_events = {k: v for k, v in props(template, name).items() if k != "Events"}
        text = json.dumps(without_events)
        assert '"UploadsBucket"' not in text and '"ResultsBucket"' not in text, name


def test_browsers_may_post_uploads_from_the_allowed_origins_and_the_api(template: dict[str, Any]) -> None:
    (rule,) = props(template, "UploadsBucket")["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedMethods"] == ["POST"]
    origins = json.dumps(rule["AllowedOrigins"])
    assert "AllowedOrigins" in origins
    assert "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}" in origins


def test_table_keys_on_id_expires_records_and_streams_both_images(template: dict[str, Any]) -> None:
    table = props(template, "RequestsTable")
    assert template["Resources"]["RequestsTable"]["Type"] == "AWS::DynamoDB::Table"
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [
        {"AttributeName": "id", "AttributeType": "S"},
        {"AttributeName": "status", "AttributeType": "S"},
        {"AttributeName": "updated_at", "AttributeType": "S"},
    ]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_failure_queue_is_encrypted_keeps_messages_two_weeks_and_is_tls_only(template: dict[str, Any]) -> None:
    queue = props(template, "FailureQueue")
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    (policy,) = resources(template, "AWS::SQS::QueuePolicy").values()
    assert policy["Properties"]["Queues"] == [{"Ref": "FailureQueue"}]
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# ---------------------------------------------------------------- permissions and configuration


def test_no_allow_statement_uses_a_wildcard_action(template: dict[str, Any]) -> None:
    found = [s for name in FUNCTIONS for s in statements(template, name)]
    for res in template["Resources"].values():
        found.extend(res.get("Properties", {}).get("PolicyDocument", {}).get("Statement", []))
    allows = [s for s in found if s["Effect"] == "Allow"]
    assert allows
    for statement in allows:
        assert all("*" not in action for action in as_list(statement["Action"])), statement
        assert all(r != "*" for r in as_list(statement["Resource"])), statement


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_is_allowed_exactly_what_it_needs(template: dict[str, Any], function: str) -> None:
    granted = {a for s in statements(template, function) if s["Effect"] == "Allow" for a in as_list(s["Action"])}
    assert granted == ALLOWED_ACTIONS[function]


OBJECT_GRANTS = {
    "ApiFunction": {("s3:PutObject", "uploads"), ("s3:GetObject", "results")},
    "CaptionFunction": {("s3:GetObject", "uploads")},
    "GenerateFunction": {("s3:PutObject", "results")},
    "NotifyFunction": {("s3:GetObject", "results")},
    "SweeperFunction": set(),
}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_object_permissions_are_scoped_to_their_bucket_and_key_prefix(template: dict[str, Any], function: str) -> None:
    granted = set()
    for statement in statements(template, function):
        for action in as_list(statement["Action"]):
            if action == "s3:ListBucket":
                # Only so a missing upload reads as 404, not 403 (see the template).
                assert function == "CaptionFunction"
                assert sub(statement["Resource"]) == "arn:aws:s3:::reimagine-uploads-123456789012-us-east-1"
            elif action.startswith("s3:"):
                arn = sub(statement["Resource"])
                match = re.fullmatch(r"arn:aws:s3:::reimagine-(\w+)-123456789012-us-east-1/(\w+)/\*", arn)
                assert match and match.group(1) == match.group(2), arn
                granted.add((action, match.group(1)))
    assert granted == OBJECT_GRANTS[function]


def test_provider_grants_name_the_configured_models_and_token_parameter(template: dict[str, Any]) -> None:
    def resource_of(function: str, action: str) -> str:
        (statement,) = [s for s in statements(template, function) if action in as_list(s["Action"])]
        return statement["Resource"]["Fn::Sub"]

    assert resource_of("CaptionFunction", "bedrock:InvokeModel").endswith(":foundation-model/${BedrockCaptionModel}")
    assert resource_of("GenerateFunction", "bedrock:InvokeModel").endswith(":foundation-model/${BedrockImageModel}")
    for function in ("CaptionFunction", "GenerateFunction"):
        assert resource_of(function, "ssm:GetParameter").endswith(":parameter${HfTokenParameter}")
    (ses,) = [s for s in statements(template, "NotifyFunction") if "ses:SendEmail" in as_list(s["Action"])]
    assert ses["Condition"] == {"StringEquals": {"ses:FromAddress": {"Ref": "SenderEmail"}}}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_gets_the_settings_it_reads(template: dict[str, Any], function: str) -> None:
    env = function_env(template, function)
    assert GLOBAL_ENV | REQUIRED_ENV[function] <= set(env)
    assert env["TABLE_NAME"] == {"Ref": "RequestsTable"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "reimagine"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Reimagine"
    # Every variable is one the Settings model (or Powertools) actually reads: no typos, no leftovers.
    known = {field.upper() for field in Settings.model_fields} | GLOBAL_ENV
    assert set(env) <= known, set(env) - known


def test_notify_links_point_at_this_api(template: dict[str, Any]) -> None:
    env = function_env(template, "NotifyFunction")
    assert env["API_BASE_URL"] == {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert env["SENDER_EMAIL"] == {"Ref": "SenderEmail"}


def test_parameters_are_described_and_defaults_agree_with_the_settings(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert all(p.get("Description") for p in parameters.values())
    defaults = Settings()
    assert parameters["Provider"]["AllowedValues"] == ["offline", "huggingface", "bedrock"]
    assert parameters["Provider"]["Default"] == defaults.provider
    assert parameters["MaxUploadBytes"]["Default"] == defaults.max_upload_bytes
    assert parameters["HfTokenParameter"]["Default"] == defaults.hf_token_parameter
    assert parameters["HfCaptionModel"]["Default"] == defaults.hf_caption_model
    assert parameters["HfCaptionRoute"]["Default"] == defaults.hf_caption_route
    assert parameters["HfImageModel"]["Default"] == defaults.hf_image_model
    assert parameters["BedrockCaptionModel"]["Default"] == defaults.bedrock_caption_model
    assert parameters["BedrockImageModel"]["Default"] == defaults.bedrock_image_model
    assert parameters["GenerationStyle"]["Default"] == defaults.generation_style
    assert parameters["AllowedOrigins"]["Type"] == "CommaDelimitedList"
    assert parameters["DailyQuotaPerEmail"]["Default"] == defaults.daily_quota_per_email


# ---------------------------------------------------------------- abuse limits


def test_the_api_counts_requests_per_email_with_a_keyed_hash(template: dict[str, Any]) -> None:
    env = function_env(template, "ApiFunction")
    assert env["DAILY_QUOTA_PER_EMAIL"] == {"Ref": "DailyQuotaPerEmail"}
    # Per deployment: a stack's counters say nothing about another's.
    assert env["QUOTA_SALT"] == {"Ref": "AWS::StackId"}
    assert env["QUOTA_KEY_PARAMETER"] == {
        "Fn::If": ["HasQuotaKey", {"Ref": "QuotaKeyParameter"}, {"Ref": "AWS::NoValue"}]
    }
    assert template["Conditions"]["HasQuotaKey"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "QuotaKeyParameter"}, ""]}]}
    assert template["Parameters"]["QuotaKeyParameter"]["Default"] == ""


def test_the_api_may_update_quota_counters_and_no_request_record(template: dict[str, Any]) -> None:
    (update,) = [s for s in statements(template, "ApiFunction") if "dynamodb:UpdateItem" in as_list(s["Action"])]
    assert update["Resource"] == {"Fn::GetAtt": ["RequestsTable", "Arn"]}
    assert update["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["quota#*"]}}
    (ssm,) = [s for s in statements(template, "ApiFunction") if "ssm:GetParameter" in as_list(s["Action"])]
    assert ssm["Resource"]["Fn::Sub"].endswith(":parameter${QuotaKeyParameter}")
    # That grant exists only when a key parameter is named.
    policy = props(template, "ApiFunction")["Policies"][0]["Statement"]
    (conditional,) = [s for s in policy if "Fn::If" in s]
    assert conditional["Fn::If"][0] == "HasQuotaKey" and conditional["Fn::If"][2] == {"Ref": "AWS::NoValue"}


# ---------------------------------------------------------------- alarms


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: res["Properties"] for name, res in resources(template, "AWS::CloudWatch::Alarm").items()}


ALARM_ACTIONS = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


def test_anything_in_the_failure_queue_raises_an_alarm(template: dict[str, Any]) -> None:
    (alarm,) = [a for a in _alarms(template).values() if a["Namespace"] == "AWS/SQS"]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["FailureQueue", "QueueName"]}}]
    assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
        "Maximum",
        "GreaterThanThreshold",
        0,
    )


def test_every_function_has_an_errors_alarm(template: dict[str, Any]) -> None:
    watched = {}
    for alarm in _alarms(template).values():
        if alarm["Namespace"] == "AWS/Lambda":
            assert alarm["MetricName"] == "Errors"
            assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
                "Sum",
                "GreaterThanThreshold",
                0,
            )
            (dimension,) = alarm["Dimensions"]
            assert dimension["Name"] == "FunctionName"
            watched[dimension["Value"]["Ref"]] = alarm
    assert set(watched) == set(resources(template, "AWS::Serverless::Function"))


def test_alarms_notify_the_optional_topic(template: dict[str, Any]) -> None:
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert template["Conditions"]["HasAlarmTopic"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}
    alarms = _alarms(template)
    assert len(alarms) >= 2
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == alarm["OKActions"] == ALARM_ACTIONS
        # No data means nothing failed, not an alarm.
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["EvaluationPeriods"] >= 1 and alarm["Period"] >= 60


def test_outputs_name_what_clients_and_operators_need(template: dict[str, Any]) -> None:
    assert set(template["Outputs"]) == {
        "ApiUrl",
        "UploadsBucketName",
        "ResultsBucketName",
        "RequestsTableName",
        "FailureQueueUrl",
    }


def test_only_the_runtime_lifecycle_checks_are_silenced(template: dict[str, Any]) -> None:
    ignored = template.get("Metadata", {}).get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
    assert set(ignored) <= {"E2531", "E2533", "W2531"}


# ---------------------------------------------------------------- linters


def tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.fail(
            f"{name} is not installed next to {sys.executable}; "
            "`make test` installs it (pip install aws-sam-cli cfn-lint)"
        )
    return path


def test_cfn_lint_is_clean() -> None:
    result = subprocess.run([tool("cfn-lint"), str(TEMPLATE)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint_is_clean(tmp_path: Path) -> None:
    # A private SAM CLI home that has just checked for updates keeps the run offline and the user's
    # own configuration untouched; the credentials are dummies, validation never calls AWS.
    (tmp_path / "metadata.json").write_text(json.dumps({"lastVersionCheck": time.time()}))
    env = {
        **os.environ,
        "__SAM_CLI_APP_DIR": str(tmp_path),
        "SAM_CLI_TELEMETRY": "0",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = subprocess.run(
        [tool("sam"), "validate", "--lint", "--template", str(TEMPLATE), "--region", "us-east-1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- samconfig


def test_samconfig_has_the_three_environments() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert str(config["version"]) == "0.1"
    providers = {}
    for env in ("default", "localstack", "prod"):
        stack = config[env]["global"]["parameters"]["stack_name"]
        # Bucket names embed the stack name: lowercase, and short enough for 63 characters.
        assert re.fullmatch(r"[a-z][a-z0-9-]*", stack), stack
        assert len(f"{stack}-results-123456789012-ap-southeast-2") <= 63, stack
        build = config[env]["build"]["parameters"]
        assert build["cached"] is True and build["parallel"] is True
        assert config[env]["validate"]["parameters"]["lint"] is True
        deploy = config[env]["deploy"]["parameters"]
        assert deploy["capabilities"] == "CAPABILITY_IAM"
        assert deploy["resolve_s3"] is True
        provider = re.search(r'Provider="?(\w+)', deploy["parameter_overrides"])
        assert provider, deploy["parameter_overrides"]
        providers[env] = provider.group(1)
    assert config["prod"]["deploy"]["parameters"]["confirm_changeset"] is True
    assert config["localstack"]["global"]["parameters"]["region"] == "us-east-1"
    assert providers == {"default": "offline", "localstack": "offline", "prod": "huggingface"}


# ---------------------------------------------------------------- sample events


def test_every_trigger_has_a_sample_event_about_the_same_request() -> None:
    # One sample per trigger, as AWS sends it (other files, e.g. emulators' variants, may sit beside them).
    samples = {
        "api_post_requests.json",
        "api_get_request.json",
        "api_get_result.json",
        "s3_object_created.json",
        "dynamodb_stream_captioned.json",
        "dynamodb_stream_completed.json",
        "schedule_sweeper.json",
    }
    assert samples <= {p.name for p in EVENTS.glob("*.json")}
    # The id does not exist before the request is created; the schedule is about no request.
    about_nothing = {"api_post_requests.json", "schedule_sweeper.json"}
    for name in samples:
        text = (EVENTS / name).read_text()
        json.loads(text)
        if name not in about_nothing:
            assert REQUEST_ID in text, name


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("api_post_requests.json", APIGatewayProxyEventV2Model),
        ("api_get_request.json", APIGatewayProxyEventV2Model),
        ("api_get_result.json", APIGatewayProxyEventV2Model),
        ("s3_object_created.json", S3Model),
        ("dynamodb_stream_captioned.json", DynamoDBStreamModel),
        ("dynamodb_stream_completed.json", DynamoDBStreamModel),
        ("schedule_sweeper.json", EventBridgeModel),
    ],
)
def test_samples_have_the_shape_powertools_parses(name: str, model: type[BaseModel]) -> None:
    model.model_validate(load_event(name))


@pytest.mark.parametrize(
    ("name", "route"),
    [
        ("api_post_requests.json", ("POST", "/requests")),
        ("api_get_request.json", ("GET", "/requests/{id}")),
        ("api_get_result.json", ("GET", "/requests/{id}/result")),
    ],
)
def test_api_samples_are_http_api_v2_events_on_declared_routes(name: str, route: tuple[str, str]) -> None:
    event = load_event(name)
    assert event["version"] == "2.0"
    assert event["routeKey"] == event["requestContext"]["routeKey"] == f"{route[0]} {route[1]}"
    assert route in ROUTES
    assert event["requestContext"]["http"]["method"] == route[0]
    assert event["requestContext"]["accountId"] == PSEUDO["AWS::AccountId"]
    assert event["requestContext"]["domainName"].endswith(".execute-api.us-east-1.amazonaws.com")
    concrete = route[1].replace("{id}", REQUEST_ID)
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == concrete
    if "{id}" in route[1]:
        assert event["pathParameters"] == {"id": REQUEST_ID}
    else:
        body = json.loads(event["body"])
        assert set(body) >= {"email", "content_type"}
        assert event["headers"]["content-length"] == str(len(event["body"]))


def test_s3_sample_is_an_upload_the_caption_trigger_accepts(template: dict[str, Any]) -> None:
    (record,) = load_event("s3_object_created.json")["Records"]
    (trigger,) = events_of(template, "CaptionFunction", "S3").values()
    assert record["eventVersion"] == "2.1"
    assert record["eventSource"] == "aws:s3"
    assert record["awsRegion"] == PSEUDO["AWS::Region"]
    event_prefix = trigger["Events"].removeprefix("s3:").removesuffix("*")
    assert record["eventName"].startswith(event_prefix)
    bucket = sub(props(template, "UploadsBucket")["BucketName"])
    assert record["s3"]["bucket"]["name"] == bucket
    assert record["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{bucket}"
    (rule,) = trigger["Filter"]["S3Key"]["Rules"]
    assert record["s3"]["object"]["key"].startswith(rule["Value"])
    assert record["s3"]["object"]["key"] == f"uploads/{REQUEST_ID}"


@pytest.mark.parametrize(
    ("name", "consumer", "bystander"),
    [
        ("dynamodb_stream_captioned.json", "GenerateFunction", "NotifyFunction"),
        ("dynamodb_stream_completed.json", "NotifyFunction", "GenerateFunction"),
    ],
)
def test_stream_samples_reach_exactly_their_consumer(
    template: dict[str, Any], name: str, consumer: str, bystander: str
) -> None:
    (record,) = load_event(name)["Records"]
    assert record["eventVersion"] == "1.1"
    assert record["eventSource"] == "aws:dynamodb"
    assert record["eventName"] == "MODIFY"
    assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert record["dynamodb"]["Keys"] == {"id": {"S": REQUEST_ID}}
    assert record["eventSourceARN"].startswith("arn:aws:dynamodb:us-east-1:123456789012:table/reimagine-")
    assert matches(stream_filter(template, consumer), record)
    assert not matches(stream_filter(template, bystander), record)


def test_notify_filter_skips_records_already_notified(template: dict[str, Any]) -> None:
    # Guards the matcher as much as the filter: the same record once notified must not match.
    (record,) = load_event("dynamodb_stream_completed.json")["Records"]
    pattern = stream_filter(template, "NotifyFunction")
    assert matches(pattern, record)
    record["dynamodb"]["NewImage"]["notified_at"] = {"S": "2026-11-23T09:00:16.000Z"}
    assert not matches(pattern, record)
    record["dynamodb"]["NewImage"].pop("notified_at")
    record["dynamodb"]["NewImage"]["status"] = {"S": "GENERATING"}
    assert not matches(pattern, record)


def test_stream_samples_go_from_the_previous_status(template: dict[str, Any]) -> None:
    captioned = load_event("dynamodb_stream_captioned.json")["Records"][0]["dynamodb"]
    completed = load_event("dynamodb_stream_completed.json")["Records"][0]["dynamodb"]
    assert captioned["OldImage"]["status"] == {"S": "CAPTIONING"}
    assert captioned["NewImage"]["status"] == {"S": "CAPTIONED"}
    assert completed["OldImage"]["status"] == {"S": "GENERATING"}
    assert completed["NewImage"]["status"] == {"S": "COMPLETED"}
    assert completed["NewImage"]["result_key"] == {"S": f"results/{REQUEST_ID}.png"}
    assert "notified_at" not in completed["NewImage"]


# ---------------------------------------------------------------- the sweeper


def test_the_sweeper_runs_on_a_schedule_and_its_retry_is_the_next_run(template: dict[str, Any]) -> None:
    (schedule,) = events_of(template, "SweeperFunction", "Schedule").values()
    assert schedule["Schedule"] == "rate(5 minutes)"
    invoke = props(template, "SweeperFunction")["EventInvokeConfig"]
    assert invoke["MaximumRetryAttempts"] == 0
    assert invoke["MaximumEventAgeInSeconds"] <= 300
    env = function_env(template, "SweeperFunction")
    assert env["STUCK_AFTER_SECONDS"] == {"Ref": "StuckAfterSeconds"}
    assert template["Parameters"]["StuckAfterSeconds"]["Default"] == Settings().stuck_after_seconds
    assert int(env["SWEEP_MAX_ITEMS"]) <= 1000 and int(env["MAX_REDRIVES"]) >= 1


def test_the_sweeper_reads_the_status_index_it_queries(template: dict[str, Any]) -> None:
    (index,) = props(template, "RequestsTable")["GlobalSecondaryIndexes"]
    assert index["IndexName"] == STATUS_INDEX
    assert index["KeySchema"] == [
        {"AttributeName": "status", "KeyType": "HASH"},
        {"AttributeName": "updated_at", "KeyType": "RANGE"},
    ]
    # What the sweeper decides on, projected so it never reads the full item.
    assert set(index["Projection"]["NonKeyAttributes"]) == set(StuckCandidate.model_fields) - {
        "id",
        "status",
        "updated_at",
    }
    (query,) = [s for s in statements(template, "SweeperFunction") if s["Action"] == "dynamodb:Query"]
    assert query["Resource"] == {"Fn::Sub": f"${{RequestsTable.Arn}}/index/{STATUS_INDEX}"}
