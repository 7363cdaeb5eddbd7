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
from reimagine.records import STATUS_INDEX, UNNOTIFIED_FILTER_ATTRIBUTES, StuckCandidate
from reimagine_tools.template import Resolver, StackContext
from tests.fixtures.events import EVENTS, load_event
from tests.fixtures.template import (
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

BIN = Path(sys.executable).parent

FUNCTIONS = (
    "ApiFunction",
    "CaptionFunction",
    "GenerateFunction",
    "NotifyFunction",
    "SweeperFunction",
    "MailEventsFunction",
)
REQUEST_ID = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"

# The shared contract, restated on purpose: a change to either side must show up here.
GENERATE_FILTER = {"dynamodb": {"NewImage": {"status": {"S": ["CAPTIONED"]}}}}
NOTIFY_FILTER = {
    "dynamodb": {
        "NewImage": {
            "status": {"S": ["COMPLETED", "FAILED"]},
            "notified_at": {"S": [{"exists": False}]},
            "notify_error": {"M": {"code": {"S": [{"exists": False}]}}},
            "notify_claimed_until": {"N": [{"exists": False}]},
        }
    }
}
ROUTES = {
    ("POST", "/requests"),
    ("GET", "/requests/{id}"),
    ("GET", "/requests/{id}/result"),
    ("DELETE", "/requests/{id}"),
    ("GET", "/results/{id}"),
    ("GET", "/styles"),
    ("GET", "/openapi.json"),
    ("GET", "/"),
    # The links in mail: GET shows one button, POST acts (issue: mail scanners fetch links).
    ("GET", "/confirm/{token}"),
    ("POST", "/confirm/{token}"),
    ("GET", "/unsubscribe/{token}"),
    ("POST", "/unsubscribe/{token}"),
}
HANDLERS = {
    "ApiFunction": "reimagine.handlers.api.handler",
    "CaptionFunction": "reimagine.handlers.caption.handler",
    "GenerateFunction": "reimagine.handlers.generate.handler",
    "NotifyFunction": "reimagine.handlers.notify.handler",
    "SweeperFunction": "reimagine.handlers.sweeper.handler",
    "MailEventsFunction": "reimagine.handlers.mail_events.handler",
}
# Least privilege is stated per role on the translated template: tests/infrastructure/test_iam_roles.py.
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
        "DAILY_QUOTA_PER_IP",
        "DAILY_REQUEST_BUDGET",
        "STYLES",
        "QUOTA_KEY_PARAMETER",
        "QUOTA_KEY_SECRET",
        "CONFIRMED_FOR_DAYS",
    },
    "CaptionFunction": {
        "PROVIDER",
        "UPLOADS_BUCKET",
        "MAX_IMAGE_PIXELS",
        "CAPTION_MAX_SIDE",
        "CAPTION_JPEG_QUALITY",
        "MAX_ATTEMPTS",
        "HF_TOKEN_PARAMETER",
        "HF_ROUTER_URL",
        "HF_CAPTION_MODELS",
        "BEDROCK_CAPTION_MODELS",
        "OPENAI_BASE_URL",
        "OPENAI_CAPTION_MODELS",
        "OPENAI_KEY_PARAMETER",
        "CONFIRM_ADDRESSES",
        "UPLOAD_RETENTION_DAYS",
        "SENDER_EMAIL",
        "MAIL_CONFIGURATION_SET",
        "API_BASE_URL",
        "QUOTA_KEY_PARAMETER",
        "QUOTA_KEY_SECRET",
    },
    "GenerateFunction": {
        "PROVIDER",
        "RESULTS_BUCKET",
        "STYLES",
        "RESULT_SIZE",
        "MAX_ATTEMPTS",
        "HF_TOKEN_PARAMETER",
        "HF_ROUTER_URL",
        "HF_HUB_URL",
        "HF_IMAGE_MODELS",
        "BEDROCK_IMAGE_MODELS",
        "BEDROCK_IMAGE_REGION",
        "OPENAI_BASE_URL",
        "OPENAI_IMAGE_MODELS",
        "OPENAI_KEY_PARAMETER",
    },
    "NotifyFunction": {
        "RESULTS_BUCKET",
        "RESULT_URL_TTL_SECONDS",
        "SENDER_EMAIL",
        "API_BASE_URL",
        "MAIL_CONFIGURATION_SET",
        "CONFIRM_ADDRESSES",
        "QUOTA_KEY_PARAMETER",
        "QUOTA_KEY_SECRET",
        "STYLES",
    },
    "SweeperFunction": {"STUCK_AFTER_SECONDS", "MAX_REDRIVES", "SWEEP_MAX_ITEMS"},
    "MailEventsFunction": {"QUOTA_KEY_PARAMETER", "QUOTA_KEY_SECRET"},
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
    """Lambda event filtering, the subset this project uses: nested keys, literal lists, exists.

    As in EventBridge patterns, a value that is an array matches when any of its elements does.
    """
    if isinstance(pattern, dict):
        node = value if isinstance(value, dict) else {}
        return all(matches(sub_pattern, node.get(key)) for key, sub_pattern in pattern.items())
    assert isinstance(pattern, list), pattern
    if isinstance(value, list):
        return any(matches(pattern, element) for element in value)
    for option in pattern:
        if isinstance(option, dict):
            assert set(option) == {"exists"}, f"matcher does not know {option}"
            if option["exists"] is (value is not None):
                return True
        elif value is not None and option == value:
            return True
    return False


def stream_filter(template: dict[str, Any], consumer: str) -> dict[str, Any]:
    """The one filter pattern of a stream reader: a function's DynamoDB event, or a pipe's source."""
    if template["Resources"][consumer]["Type"] == "AWS::Pipes::Pipe":
        criteria = props(template, consumer)["SourceParameters"]["FilterCriteria"]
    else:
        (event,) = events_of(template, consumer, "DynamoDB").values()
        criteria = event["FilterCriteria"]
    (only,) = criteria["Filters"]
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
    ("function", "contract"), [("GeneratePipe", GENERATE_FILTER), ("NotifyFunction", NOTIFY_FILTER)]
)
def test_stream_consumers_filter_exactly_as_the_contract_says(
    template: dict[str, Any], function: str, contract: dict[str, Any]
) -> None:
    assert stream_filter(template, function) == contract


@pytest.mark.parametrize("function", ["NotifyFunction"])
def test_stream_consumers_report_partial_failures_and_park_poison_records(
    template: dict[str, Any], function: str
) -> None:
    (stream,) = events_of(template, function, "DynamoDB").values()
    assert stream["Stream"] == {"Fn::GetAtt": ["RequestsTable", "StreamArn"]}
    assert stream["StartingPosition"] == "LATEST"
    assert 0 <= stream["MaximumBatchingWindowInSeconds"] <= 5
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["BisectBatchOnFunctionError"] is True
    assert stream["MaximumRetryAttempts"] == 3
    assert 60 <= stream["MaximumRecordAgeInSeconds"] <= 604800
    assert stream["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["FailureQueue", "Arn"]},
    }


def test_the_generate_pipe_reads_the_stream_as_the_mapping_did_and_parks_what_it_cannot_send(
    template: dict[str, Any],
) -> None:
    pipe = props(template, "GeneratePipe")
    assert pipe["Source"] == {"Fn::GetAtt": ["RequestsTable", "StreamArn"]}
    assert pipe["Target"] == {"Fn::GetAtt": ["GenerateQueue", "Arn"]}
    assert pipe["RoleArn"] == {"Fn::GetAtt": ["GeneratePipeRole", "Arn"]}
    assert pipe["SourceParameters"]["DynamoDBStreamParameters"] == {
        "StartingPosition": "LATEST",
        "BatchSize": 10,  # SendMessageBatch's most
        "MaximumBatchingWindowInSeconds": 1,
        "MaximumRetryAttempts": 3,
        "MaximumRecordAgeInSeconds": 86400,
        "OnPartialBatchItemFailure": "AUTOMATIC_BISECT",
        "DeadLetterConfig": {"Arn": {"Fn::GetAtt": ["FailureQueue", "Arn"]}},
    }
    assert "TargetParameters" not in pipe  # a standard queue: the record's JSON is the body


def test_the_generate_pipe_role_may_read_the_stream_and_send_to_its_two_queues_only(template: dict[str, Any]) -> None:
    role = props(template, "GeneratePipeRole")
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust == {
        "Effect": "Allow",
        "Principal": {"Service": "pipes.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
    }
    assert "ManagedPolicyArns" not in role
    (policy,) = role["Policies"]
    grants = {
        (action, json.dumps(statement["Resource"], sort_keys=True))
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow" and "Condition" not in statement
        for action in as_list(statement["Action"])
    }
    stream = json.dumps({"Fn::GetAtt": ["RequestsTable", "StreamArn"]}, sort_keys=True)
    assert grants == {
        ("dynamodb:DescribeStream", stream),
        ("dynamodb:GetRecords", stream),
        ("dynamodb:GetShardIterator", stream),
        ("dynamodb:ListStreams", stream),
        ("sqs:SendMessage", json.dumps({"Fn::GetAtt": ["GenerateQueue", "Arn"]}, sort_keys=True)),
        ("sqs:SendMessage", json.dumps({"Fn::GetAtt": ["FailureQueue", "Arn"]}, sort_keys=True)),
    }


def test_generate_reads_its_queue_one_message_at_a_time_and_reports_failures_by_message(
    template: dict[str, Any],
) -> None:
    (queue,) = events_of(template, "GenerateFunction", "SQS").values()
    assert queue == {
        "Queue": {"Fn::GetAtt": ["GenerateQueue", "Arn"]},
        "BatchSize": 1,
        "ScalingConfig": {"MaximumConcurrency": {"Ref": "GenerateConcurrency"}},
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    }
    assert events_of(template, "GenerateFunction", "DynamoDB") == {}


def test_log_groups_keep_logs_for_the_configured_days(template: dict[str, Any]) -> None:
    groups = {
        res["Properties"]["LogGroupName"]["Fn::Sub"]: res["Properties"]
        for res in resources(template, "AWS::Logs::LogGroup").values()
        if "LogGroupName" in res["Properties"]  # the API's access log group is named by CloudFormation
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
    _assert_tls_only(template, "FailureQueue")


def _assert_tls_only(template: dict[str, Any], queue: str) -> None:
    (policy,) = [
        p
        for p in resources(template, "AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": queue}]
    ]
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Action"], deny["Resource"]) == ("Deny", "sqs:*", {"Fn::GetAtt": [queue, "Arn"]})
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_generate_queue_is_encrypted_tls_only_and_parks_a_message_after_four_receives(template: dict[str, Any]) -> None:
    queue = props(template, "GenerateQueue")
    assert queue["SqsManagedSseEnabled"] is True
    # AWS: a queue a function reads has a visibility timeout of at least 6 x the function's timeout.
    assert queue["VisibilityTimeout"] >= 6 * props(template, "GenerateFunction")["Timeout"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["FailureQueue", "Arn"]},
        "maxReceiveCount": 4,
    }
    # The dead-letter queue keeps a message longer than the queue it comes from.
    assert queue["MessageRetentionPeriod"] < props(template, "FailureQueue")["MessageRetentionPeriod"]
    _assert_tls_only(template, "GenerateQueue")


# ---------------------------------------------------------------- permissions and configuration


# AWS Marketplace defines no resource types for these, so a grant can only be on "*"; Subscribe is
# held to the configured products, and ViewSubscriptions only reads.
@pytest.mark.parametrize("function", ["CaptionFunction", "GenerateFunction"])
def test_marketplace_subscription_is_held_to_the_configured_products(template: dict[str, Any], function: str) -> None:
    (subscribe,) = [s for s in statements(template, function) if "aws-marketplace:Subscribe" in as_list(s["Action"])]
    assert (as_list(subscribe["Action"]), subscribe["Condition"]) == (
        ["aws-marketplace:Subscribe"],
        {"ForAnyValue:StringEquals": {"aws-marketplace:ProductId": {"Ref": "BedrockMarketplaceProductIds"}}},
    )


# The Marketplace products of the default chains' third-party models (Amazon's have none): Claude
# Haiku 5.5 from its model card; Stable Image Core and SD3.5 Large from the Bedrock user guide's
# product-id table (model-access-product-ids), read 2026-12-01.
DEFAULT_PRODUCTS = {
    "us.anthropic.claude-haiku-5-5": "prod-6cyn7tgqazjhu",
    "stability.stable-image-core-v1:1": "prod-eacdrmv7zfc5e",
    "stability.sd3-5-large-v1:0": "prodview-ajc3gw4mjy7my",
}


def test_the_default_chains_may_subscribe_to_their_third_party_models(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    third_party = [
        model
        for chain in ("BedrockCaptionModels", "BedrockImageModels")
        for model in Settings.chain(parameters[chain]["Default"])
        if ".amazon." not in f".{model}"
    ]
    assert parameters["BedrockMarketplaceProductIds"]["Default"].split(",") == [
        DEFAULT_PRODUCTS[model] for model in third_party
    ]


def _chain_items(resource: Any, parameter: str) -> list[tuple[str, int]]:
    """(ARN template, item index) of a `!Sub [template, {Model: !Select [i, !Split [",", chain x3]], ...}]`."""
    template_text, variables = resource["Fn::Sub"]
    index, (delimiter, tripled) = variables["Model"]["Fn::Select"][0], variables["Model"]["Fn::Select"][1]["Fn::Split"]
    assert (delimiter, tripled) == (",", {"Fn::Sub": f"${{{parameter}}},${{{parameter}}},${{{parameter}}}"})
    # The only other variable an ARN may use is the image region, which falls back to this stack's.
    assert set(variables) <= {"Model", "ImageRegion"}
    assert variables.get("ImageRegion", IMAGE_REGION) == IMAGE_REGION
    return [(template_text, index)]


IMAGE_REGION = {"Fn::If": ["HasBedrockImageRegion", {"Ref": "BedrockImageRegion"}, {"Ref": "AWS::Region"}]}
MODEL_ARN = "arn:${AWS::Partition}:bedrock:${%s}::foundation-model/${Model}"
PROFILE_ARN = "arn:${AWS::Partition}:bedrock:${%s}:${AWS::AccountId}:inference-profile/${Model}"


@pytest.mark.parametrize(
    ("function", "sid", "parameter", "region"),
    [
        # Captions in this stack's region; pictures in the region that paints.
        ("CaptionFunction", "CaptionModel", "BedrockCaptionModels", "AWS::Region"),
        ("GenerateFunction", "ImageModel", "BedrockImageModels", "ImageRegion"),
    ],
)
def test_bedrock_grants_cover_each_model_of_the_chain_as_id_and_as_profile(
    template: dict[str, Any], function: str, sid: str, parameter: str, region: str
) -> None:
    model_arn, profile_arn = MODEL_ARN % region, PROFILE_ARN % region
    by_sid = {s["Sid"]: s for s in statements(template, function)}
    direct, via = by_sid[sid], by_sid[f"{sid}ViaProfile"]
    items = [item for resource in direct["Resource"] for item in _chain_items(resource, parameter)]
    profiles = [
        item
        for resource in via["Condition"]["StringEquals"]["bedrock:InferenceProfileArn"]
        for item in _chain_items(resource, parameter)
    ]
    # Every one of the (at most three) models, as a model id and as a profile of this account
    assert sorted(items) == sorted([(model_arn, i) for i in range(3)] + [(profile_arn, i) for i in range(3)])
    # The models a profile routes to, in any region, but only through the chain's profiles
    assert (via["Resource"], sorted(profiles)) == (
        {"Fn::Sub": "arn:${AWS::Partition}:bedrock:*::foundation-model/*"},
        [(profile_arn, i) for i in range(3)],
    )


def _image_grants_and_region(**parameters: str) -> tuple[set[str], str]:
    """The resolved image-model ARNs of a us-east-1 stack on Bedrock, and the region its client is told."""
    raw = load_template()
    resolver = Resolver(raw, StackContext(region="us-east-1", parameters={"Provider": "bedrock", **parameters}))
    generate = resolver.resolve(raw["Resources"]["GenerateFunction"]["Properties"])
    arns: set[str] = set()
    for statement in generate["Policies"][0]["Statement"]:
        if statement["Sid"] == "ImageModel":
            arns |= set(statement["Resource"])
        if statement["Sid"] == "ImageModelViaProfile":
            arns |= set(statement["Condition"]["StringEquals"]["bedrock:InferenceProfileArn"])
    return arns, generate["Environment"]["Variables"]["BEDROCK_IMAGE_REGION"]


@pytest.mark.parametrize(
    ("parameters", "painter"),
    [
        ({}, "us-west-2"),  # the default: where the default Stability models are served
        ({"BedrockImageRegion": "eu-west-1"}, "eu-west-1"),
        ({"BedrockImageRegion": ""}, "us-east-1"),  # empty: the stack's own region
    ],
)
def test_a_us_east_1_stack_paints_and_is_granted_in_the_image_region(parameters: dict[str, str], painter: str) -> None:
    arns, told = _image_grants_and_region(BedrockImageModels="stability.stable-image-core-v1:1", **parameters)
    assert (arns, told) == (
        {
            f"arn:aws:bedrock:{painter}::foundation-model/stability.stable-image-core-v1:1",
            f"arn:aws:bedrock:{painter}:123456789012:inference-profile/stability.stable-image-core-v1:1",
        },
        parameters.get("BedrockImageRegion", "us-west-2"),
    )


def test_the_image_region_is_one_region_or_empty(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["BedrockImageRegion"]
    accepted = ["", "us-west-2", "eu-central-1", "ap-northeast-1", "us-gov-west-1"]
    rejected = ["*", "us-west-2,us-east-1", "us-west", "arn:aws:bedrock:us-west-2", "US-WEST-2"]
    assert parameter["Default"] == "us-west-2"
    assert [bool(re.fullmatch(parameter["AllowedPattern"], r)) for r in accepted + rejected] == [True] * len(
        accepted
    ) + [False] * len(rejected)
    # The setting checks the same way, and is empty when unset (the function's own region)
    assert Settings().bedrock_image_region == ""
    assert [Settings.model_fields["bedrock_image_region"].metadata[0].pattern] == [parameter["AllowedPattern"]]


def test_a_chain_is_at_most_three_models(template: dict[str, Any]) -> None:
    for name in ("BedrockCaptionModels", "BedrockImageModels", "HfCaptionModels", "HfImageModels"):
        pattern = template["Parameters"][name]["AllowedPattern"]
        assert (bool(re.fullmatch(pattern, "a.b,c-d,e_f")), bool(re.fullmatch(pattern, "a,b,c,d"))) == (
            True,
            False,
        )


def test_provider_secrets_are_the_named_parameters(template: dict[str, Any]) -> None:
    def resource_of(function: str, sid: str) -> str:
        (statement,) = [s for s in statements(template, function) if s.get("Sid") == sid]
        return statement["Resource"]["Fn::Sub"]

    for function in ("CaptionFunction", "GenerateFunction"):
        assert resource_of(function, "ProviderToken").endswith(":parameter${HfTokenParameter}")
        assert resource_of(function, "ProviderKey").endswith(":parameter${OpenAiKeyParameter}")
    (ses,) = [s for s in statements(template, "NotifyFunction") if s.get("Sid") == "SendFromSender"]
    assert ses["Condition"] == {"StringEquals": {"ses:FromAddress": {"Ref": "SenderEmail"}}}


def test_chain_exhaustion_raises_an_alarm(template: dict[str, Any]) -> None:
    alarm = template["Resources"]["ChainExhaustedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"], alarm["Threshold"]) == (
        "Reimagine",
        "ChainExhausted",
        [{"Name": "service", "Value": "reimagine"}],
        0,
    )


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
    assert parameters["Provider"]["AllowedValues"] == ["offline", "huggingface", "bedrock", "openai"]
    assert parameters["Provider"]["Default"] == defaults.provider
    assert parameters["MaxUploadBytes"]["Default"] == defaults.max_upload_bytes
    assert parameters["HfTokenParameter"]["Default"] == defaults.hf_token_parameter
    for parameter, setting in {
        "HfRouterUrl": "hf_router_url",
        "HfHubUrl": "hf_hub_url",
        "HfCaptionModels": "hf_caption_models",
        "HfImageModels": "hf_image_models",
        "BedrockCaptionModels": "bedrock_caption_models",
        "BedrockImageModels": "bedrock_image_models",
        "OpenAiBaseUrl": "openai_base_url",
        "OpenAiCaptionModels": "openai_caption_models",
        "OpenAiImageModels": "openai_image_models",
        "OpenAiKeyParameter": "openai_key_parameter",
    }.items():
        assert parameters[parameter]["Default"] == getattr(defaults, setting), parameter
    assert parameters["Styles"]["Default"] == defaults.styles
    assert parameters["AllowedOrigins"]["Type"] == "CommaDelimitedList"
    assert parameters["DailyQuotaPerEmail"]["Default"] == defaults.daily_quota_per_email
    assert parameters["DailyQuotaPerIp"]["Default"] == defaults.daily_quota_per_ip
    assert parameters["DailyRequestBudget"]["Default"] == defaults.daily_request_budget
    assert parameters["ConfirmAddresses"]["Default"] == str(defaults.confirm_addresses).lower()
    assert parameters["ConfirmedForDays"]["Default"] == defaults.confirmed_for_days
    assert parameters["UploadRetentionDays"]["Default"] == defaults.upload_retention_days


# ---------------------------------------------------------------- abuse limits


KEY_FROM_SSM = {"Fn::If": ["HasQuotaKey", {"Ref": "QuotaKeyParameter"}, {"Ref": "AWS::NoValue"}]}
KEY_FROM_SECRET = {"Fn::If": ["GeneratesQuotaKey", {"Ref": "QuotaKeySecret"}, {"Ref": "AWS::NoValue"}]}
# Each function that hashes an address (to count it, look it up in the suppression list or the
# confirmations, or sign its unsubscribe link).
KEY_READERS = ("ApiFunction", "CaptionFunction", "NotifyFunction", "MailEventsFunction")


def test_the_api_counts_requests_per_email_ip_and_stack_with_a_keyed_hash(template: dict[str, Any]) -> None:
    env = function_env(template, "ApiFunction")
    assert env["DAILY_QUOTA_PER_EMAIL"] == {"Ref": "DailyQuotaPerEmail"}
    assert env["DAILY_QUOTA_PER_IP"] == {"Ref": "DailyQuotaPerIp"}
    assert env["DAILY_REQUEST_BUDGET"] == {"Ref": "DailyRequestBudget"}
    # The stack id is not secret, so it is no longer the salt.
    assert "QUOTA_SALT" not in env
    assert env["QUOTA_KEY_PARAMETER"] == KEY_FROM_SSM
    assert template["Conditions"]["HasQuotaKey"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "QuotaKeyParameter"}, ""]}]}
    assert template["Parameters"]["QuotaKeyParameter"]["Default"] == ""


def test_a_secret_quota_key_is_generated_at_deploy_time_unless_an_ssm_key_is_named(template: dict[str, Any]) -> None:
    secret = template["Resources"]["QuotaKeySecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Condition"] == "GeneratesQuotaKey"
    assert template["Conditions"]["GeneratesQuotaKey"] == {"Fn::Equals": [{"Ref": "QuotaKeyParameter"}, ""]}
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["PasswordLength"] >= 32
    assert "SecretString" not in secret["Properties"]
    for function in KEY_READERS:
        env = function_env(template, function)
        assert (env["QUOTA_KEY_PARAMETER"], env["QUOTA_KEY_SECRET"]) == (KEY_FROM_SSM, KEY_FROM_SECRET), function
        policy = props(template, function)["Policies"][0]["Statement"]
        (key_grant,) = [s for s in policy if "Fn::If" in s and s["Fn::If"][0] == "HasQuotaKey"]
        condition, ssm, generated_secret = key_grant["Fn::If"]
        assert condition == "HasQuotaKey"
        assert (ssm["Action"], ssm["Resource"]["Fn::Sub"][-len("${QuotaKeyParameter}") :]) == (
            "ssm:GetParameter",
            "${QuotaKeyParameter}",
        )
        assert generated_secret == {
            "Sid": "QuotaKey",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": {"Ref": "QuotaKeySecret"},
        }
    # Nobody else may read it.
    readers = {
        f for f in FUNCTIONS for s in statements(template, f) if "secretsmanager:GetSecretValue" in as_list(s["Action"])
    }
    assert readers == set(KEY_READERS)


def test_mail_events_may_write_suppression_entries_and_nothing_else(template: dict[str, Any]) -> None:
    (put,) = [s for s in statements(template, "MailEventsFunction") if "dynamodb:PutItem" in as_list(s["Action"])]
    assert put["Resource"] == {"Fn::GetAtt": ["RequestsTable", "Arn"]}
    assert put["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["suppressed#*"]}}


def test_every_email_goes_through_the_configuration_set_that_records_bounces_and_complaints(
    template: dict[str, Any],
) -> None:
    assert template["Resources"]["MailConfigurationSet"]["Type"] == "AWS::SES::ConfigurationSet"
    assert function_env(template, "NotifyFunction")["MAIL_CONFIGURATION_SET"] == {"Ref": "MailConfigurationSet"}
    # Sending through a set is authorised against the set too, for mail from the sender only.
    (through_set,) = [
        s for s in statements(template, "NotifyFunction") if s.get("Sid") == "SendThroughConfigurationSet"
    ]
    assert through_set["Resource"]["Fn::Sub"] == (
        "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:configuration-set/${MailConfigurationSet}"
    )
    assert set(through_set["Action"]) == {"ses:SendEmail", "ses:SendRawEmail"}
    assert through_set["Condition"] == {"StringEquals": {"ses:FromAddress": {"Ref": "SenderEmail"}}}
    destination = props(template, "MailEventDestination")
    assert destination["ConfigurationSetName"] == {"Ref": "MailConfigurationSet"}
    assert destination["EventDestination"]["Enabled"] is True
    assert sorted(destination["EventDestination"]["MatchingEventTypes"]) == ["bounce", "complaint"]
    assert sub(destination["EventDestination"]["EventBridgeDestination"]["EventBusArn"]) == (
        "arn:aws:events:us-east-1:123456789012:event-bus/default"
    )
    (rule,) = events_of(template, "MailEventsFunction", "EventBridgeRule").values()
    assert rule["Pattern"] == {
        "source": ["aws.ses"],
        "detail-type": ["Email Bounced", "Email Complaint Received"],
        "detail": {"mail": {"tags": {"ses:configuration-set": [{"Ref": "MailConfigurationSet"}]}}},
    }
    invoke = props(template, "MailEventsFunction")["EventInvokeConfig"]
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["FailureQueue", "Arn"]}


@pytest.mark.parametrize("name", ["eventbridge_ses_bounce.json", "eventbridge_ses_complaint.json"])
def test_ses_samples_reach_the_mail_events_rule(template: dict[str, Any], name: str) -> None:
    (rule,) = events_of(template, "MailEventsFunction", "EventBridgeRule").values()
    event = load_event(name)
    (configuration_set,) = event["detail"]["mail"]["tags"]["ses:configuration-set"]
    pattern = json.loads(
        json.dumps(rule["Pattern"]).replace('{"Ref": "MailConfigurationSet"}', f'"{configuration_set}"')
    )
    assert matches(pattern, event)
    other_stack = json.loads(json.dumps(event).replace(f'"{configuration_set}"', '"someone-elses-set"'))
    assert not matches(pattern, other_stack)


# ---------------------------------------------------------------- access logs


def test_http_api_access_logs_go_to_a_kept_log_group_and_carry_no_address(template: dict[str, Any]) -> None:
    settings = props(template, "HttpApi")["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert props(template, "ApiAccessLogGroup")["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    fields = json.loads(settings["Format"])
    assert {"requestId", "routeKey", "status", "responseLatency"} <= set(fields)
    variables = set(re.findall(r"\$context\.[A-Za-z.]+", settings["Format"]))
    # The route template only: the raw path, query string, headers, body and caller identity could
    # all carry an address (or an IP, which the logs need not keep).
    assert variables <= {
        "$context.requestId",
        "$context.requestTimeEpoch",
        "$context.routeKey",
        "$context.status",
        "$context.responseLength",
        "$context.responseLatency",
        "$context.integrationLatency",
        "$context.integrationStatus",
        "$context.error.message",
    }, variables


def test_the_api_may_update_the_table_only(template: dict[str, Any]) -> None:
    # The quota counters, the confirmation state and tokens, a confirmed request's resume and "delete
    # now"'s tombstone: all items of this one table.
    (update,) = [s for s in statements(template, "ApiFunction") if "dynamodb:UpdateItem" in as_list(s["Action"])]
    assert update["Resource"] == {"Fn::GetAtt": ["RequestsTable", "Arn"]}
    (ssm,) = [s for s in statements(template, "ApiFunction") if "ssm:GetParameter" in as_list(s["Action"])]
    assert ssm["Resource"]["Fn::Sub"].endswith(":parameter${QuotaKeyParameter}")
    # That grant exists only when a key parameter is named; otherwise the generated secret's does.
    policy = props(template, "ApiFunction")["Policies"][0]["Statement"]
    (conditional,) = [s for s in policy if "Fn::If" in s]
    assert conditional["Fn::If"][0] == "HasQuotaKey"
    assert conditional["Fn::If"][2]["Resource"] == {"Ref": "QuotaKeySecret"}


# ---------------------------------------------------------------- alarms


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: res["Properties"] for name, res in resources(template, "AWS::CloudWatch::Alarm").items()}


ALARM_ACTIONS = {
    "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}], [{"Ref": "AlarmTopic"}]]
}


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


def test_alarms_notify_the_stacks_topic_and_the_optional_one(template: dict[str, Any]) -> None:
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
        "AlarmsTopic",
        "DashboardUrl",
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
        ("eventbridge_ses_bounce.json", EventBridgeModel),
        ("eventbridge_ses_complaint.json", EventBridgeModel),
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
        ("dynamodb_stream_captioned.json", "GeneratePipe", "NotifyFunction"),
        ("dynamodb_stream_completed.json", "NotifyFunction", "GeneratePipe"),
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


@pytest.mark.parametrize(
    "written",
    [
        {"notify_claimed_until": {"N": "1795424476"}},  # the claim
        {"notify_claimed_until": {"N": "0"}},  # the claim given back after a transient SES error
        {"notify_error": {"M": {"code": {"S": "MessageRejected"}, "message": {"S": "Address blacklisted."}}}},
    ],
)
def test_the_notify_steps_own_writes_do_not_trigger_notify_again(template: dict[str, Any], written) -> None:
    # Given the finished, unnotified record the filter lets through
    (record,) = load_event("dynamodb_stream_completed.json")["Records"]
    pattern = stream_filter(template, "NotifyFunction")
    assert matches(pattern, record)
    # When the notify step writes its claim, gives it back or records a refusal
    record["dynamodb"]["NewImage"].update(written)
    # Then that write's stream record is not delivered: only the sweeper's touch (claim removed) is
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
    assert schedule["Schedule"] == {
        "Fn::If": ["SweepsEveryMinute", "rate(1 minute)", {"Fn::Sub": "rate(${SweepEveryMinutes} minutes)"}]
    }
    assert template["Conditions"]["SweepsEveryMinute"] == {"Fn::Equals": [{"Ref": "SweepEveryMinutes"}, "1"]}
    assert template["Parameters"]["SweepEveryMinutes"]["Default"] == 5
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
    # What the sweeper decides and filters on, projected so it never reads the full item.
    assert set(index["Projection"]["NonKeyAttributes"]) == (
        set(StuckCandidate.model_fields) - {"id", "status", "updated_at"}
    ) | set(UNNOTIFIED_FILTER_ATTRIBUTES)
    (query,) = [s for s in statements(template, "SweeperFunction") if s["Action"] == "dynamodb:Query"]
    assert query["Resource"] == {"Fn::Sub": f"${{RequestsTable.Arn}}/index/{STATUS_INDEX}"}


# ---------------------------------------------------------------- under a burst

# What a slow provider call takes (a picture from a hosted model, at the slow end), and the burst
# the defaults are sized to absorb without dropping anything.
SLOW_PICTURE_SECONDS = 10
BURST = 5000
CONCURRENCY_PARAMETERS = {"CaptionFunction": "CaptionConcurrency", "GenerateFunction": "GenerateConcurrency"}


def test_pictures_are_taken_from_the_queue_by_as_many_pollers_as_environments(template: dict[str, Any]) -> None:
    # MaximumConcurrency = reserved concurrency: Lambda never polls more than it can run, so a burst
    # waits in the queue instead of being throttled (a throttled message still counts a receive).
    (queue,) = events_of(template, "GenerateFunction", "SQS").values()
    assert queue["BatchSize"] == 1
    assert (
        queue["ScalingConfig"]["MaximumConcurrency"]
        == props(template, "GenerateFunction")["ReservedConcurrentExecutions"]
    )


def test_emails_still_go_ten_a_batch(template: dict[str, Any]) -> None:
    (stream,) = events_of(template, "NotifyFunction", "DynamoDB").values()
    assert (stream["BatchSize"], stream.get("ParallelizationFactor", 1)) == (10, 1)


@pytest.mark.parametrize(("function", "parameter"), CONCURRENCY_PARAMETERS.items())
def test_provider_calls_are_capped_by_the_functions_reserved_concurrency(
    template: dict[str, Any], function: str, parameter: str
) -> None:
    assert props(template, function)["ReservedConcurrentExecutions"] == {"Ref": parameter}
    declared = template["Parameters"][parameter]
    # GenerateConcurrency is also the SQS trigger's MaximumConcurrency, which Lambda takes from 2.
    minimum = 2 if function == "GenerateFunction" else 1
    assert (declared["Type"], declared["Default"], declared["MinValue"]) == ("Number", 10, minimum)


def test_reserved_concurrency_leaves_the_account_its_unreserved_minimum(template: dict[str, Any]) -> None:
    # Lambda refuses a reservation that leaves fewer than 100 unreserved of the default 1,000.
    reserved = [
        template["Parameters"][p["ReservedConcurrentExecutions"]["Ref"]]["Default"]
        for p in (props(template, name) for name in FUNCTIONS)
        if "ReservedConcurrentExecutions" in p
    ]
    assert len(reserved) == 2 and sum(reserved) <= 1000 - 100


def test_a_throttled_upload_waits_in_the_async_queue_as_long_as_lambda_allows(template: dict[str, Any]) -> None:
    invoke = props(template, "CaptionFunction")["EventInvokeConfig"]
    assert (invoke["MaximumEventAgeInSeconds"], invoke["MaximumRetryAttempts"]) == (21600, 2)


def test_a_burst_of_slow_pictures_drains_before_its_messages_age_out(template: dict[str, Any]) -> None:
    concurrency = template["Parameters"]["GenerateConcurrency"]["Default"]
    drain_seconds = BURST * SLOW_PICTURE_SECONDS / concurrency
    # The pipe moves records on within seconds, but may hold them up to the stream's own retention.
    stream = props(template, "GeneratePipe")["SourceParameters"]["DynamoDBStreamParameters"]
    assert stream["MaximumRecordAgeInSeconds"] == 86400
    assert drain_seconds < props(template, "GenerateQueue")["MessageRetentionPeriod"]
