"""Least privilege on the IAM roles as deployed, not as written.

template.yaml is translated by SAM (the roles it makes for the functions, SAM policy templates expanded,
the managed policies it attaches) and resolved for the sample stack, then each role is compared with
an exact allow-list: its managed policies, and every (action, resource, condition) its statements
grant. Run for every provider and for each optional parameter that adds or changes a statement.
test_security.py checks the same roles for reach beyond the stack; this one pins what is granted.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from reimagine_tools.template import Resolver, StackContext
from tests.fixtures.template import functions, load_template, props, translated

Template = dict[str, Any]
Grant = tuple[str, str, str]  # action, resource, condition as canonical JSON ("" for none)
Grants = tuple[frozenset[str], frozenset[Grant]]  # managed policy ARNs, statement grants

ACCOUNT, REGION = "123456789012", "us-east-1"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/reimagine-requeststable"
# The local resolver's stand-in for the stream's ARN, whose label AWS picks when it makes the stream:
# the table's one stream, not streams in general.
STREAM = f"{TABLE}/stream/*"
FAILURES = f"arn:aws:sqs:{REGION}:{ACCOUNT}:reimagine-failurequeue"
GENERATE_QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT}:reimagine-generatequeue"
UPLOADS = f"arn:aws:s3:::reimagine-uploads-{ACCOUNT}-{REGION}"
RESULTS = f"arn:aws:s3:::reimagine-results-{ACCOUNT}-{REGION}"
# A secret's Ref is its ARN on AWS (with a suffix chosen at creation); resolved here to its name.
QUOTA_SECRET = "reimagine-quotakeysecret"
SES = f"arn:aws:ses:{REGION}:{ACCOUNT}"
CONFIGURATION_SET = "reimagine-mailconfigurationset"

BASIC = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
XRAY = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
STREAM_READER = "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole"
QUEUE_READER = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"

DEFAULTS = {name: spec.get("Default") for name, spec in load_template()["Parameters"].items()}


def ssm(name: str) -> str:
    return f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}"


def grant(actions: str | list[str], resources: str | list[str], condition: Any = None) -> set[Grant]:
    listed = [actions] if isinstance(actions, str) else actions
    where = [resources] if isinstance(resources, str) else resources
    when = json.dumps(condition, sort_keys=True) if condition else ""
    return {(action, resource, when) for action in listed for resource in where}


def bedrock(chain: str, region: str) -> set[Grant]:
    """The Bedrock grants of one chain: each model as a model id and as a profile of this account in
    `region`, models anywhere only through those profiles, and the Marketplace subscription."""
    models = (chain.split(",") * 3)[:3]  # the template names items 0..2 of the chain repeated thrice
    profiles = [f"arn:aws:bedrock:{region}:{ACCOUNT}:inference-profile/{model}" for model in models]
    products = DEFAULTS["BedrockMarketplaceProductIds"].split(",")
    return (
        grant("bedrock:InvokeModel", [f"arn:aws:bedrock:{region}::foundation-model/{m}" for m in models] + profiles)
        | grant(
            "bedrock:InvokeModel",
            "arn:aws:bedrock:*::foundation-model/*",
            {"StringEquals": {"bedrock:InferenceProfileArn": profiles}},
        )
        | grant("aws-marketplace:Subscribe", "*", {"ForAnyValue:StringEquals": {"aws-marketplace:ProductId": products}})
        | grant("aws-marketplace:ViewSubscriptions", "*")
    )


def allow_list(parameters: dict[str, str]) -> dict[str, Grants]:
    """What each role may do, for these parameter values."""
    on_bedrock = parameters.get("Provider") == "bedrock"
    # Rekognition and Comprehend take no resource ARNs: their actions are granted on "*", only when chosen.
    on_rekognition = parameters.get("Moderation") == "rekognition"
    moderates_images = grant("rekognition:DetectModerationLabels", "*") if on_rekognition else set()
    moderates_text = grant("comprehend:DetectToxicContent", "*") if on_rekognition else set()
    quota_key = parameters.get("QuotaKeyParameter", "")
    openai_key = parameters.get("OpenAiKeyParameter", "")
    image_region = parameters.get("BedrockImageRegion", DEFAULTS["BedrockImageRegion"]) or REGION
    reads_quota_key = (
        grant("ssm:GetParameter", ssm(quota_key)) if quota_key else grant("secretsmanager:GetSecretValue", QUOTA_SECRET)
    )
    provider_secrets = grant("ssm:GetParameter", ssm(DEFAULTS["HfTokenParameter"])) | (
        grant("ssm:GetParameter", ssm(openai_key)) if openai_key else set()
    )
    record = grant(["dynamodb:GetItem", "dynamodb:UpdateItem"], TABLE)
    stream = grant(
        ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"], STREAM
    )
    park = grant("sqs:SendMessage", FAILURES)
    from_sender = {"StringEquals": {"ses:FromAddress": DEFAULTS["SenderEmail"]}}
    # An upload announced again: copied onto itself, never new content.
    reannounce = {
        "StringLike": {"s3:x-amz-copy-source": f"reimagine-uploads-{ACCOUNT}-{REGION}/uploads/*"},
        "StringEquals": {"s3:x-amz-metadata-directive": "REPLACE"},
    }
    roles = {
        # UpdateItem on any key: the quota counters and "delete now"'s tombstone of a request record.
        "ApiFunctionRole": grant(["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"], TABLE)
        | reads_quota_key
        | grant("s3:PutObject", f"{UPLOADS}/uploads/*")
        | grant("s3:GetObject", f"{RESULTS}/results/*")
        | grant("s3:GetObject", f"{UPLOADS}/uploads/*")
        | grant("s3:DeleteObject", [f"{UPLOADS}/uploads/*", f"{RESULTS}/results/*"])
        | grant("s3:ListBucket", UPLOADS),
        "CaptionFunctionRole": grant("s3:GetObject", f"{UPLOADS}/uploads/*")
        | grant("s3:ListBucket", UPLOADS)
        | grant("s3:PutObject", f"{UPLOADS}/uploads/*", reannounce)
        | grant("dynamodb:PutItem", TABLE, {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["confirm-token#*"]}})
        | grant("ses:SendRawEmail", [f"{SES}:identity/*", f"{SES}:configuration-set/{CONFIGURATION_SET}"], from_sender)
        | reads_quota_key
        | record
        | provider_secrets
        | (bedrock(DEFAULTS["BedrockCaptionModels"], REGION) if on_bedrock else set())
        | moderates_images
        | moderates_text
        | park,
        # Lambda reads GenerateQueue with the managed queue reader; the queue's redrive parks failures.
        "GenerateFunctionRole": grant("s3:PutObject", f"{RESULTS}/results/*")
        | record
        | provider_secrets
        | (bedrock(DEFAULTS["BedrockImageModels"], image_region) if on_bedrock else set())
        | moderates_images,
        # The pipe reads the stream, sends to the work queue and parks what it cannot send.
        "GeneratePipeRole": stream | grant("sqs:SendMessage", GENERATE_QUEUE) | park,
        "NotifyFunctionRole": grant("s3:GetObject", f"{RESULTS}/results/*")
        | record
        | stream
        | grant(["ses:SendEmail", "ses:SendRawEmail"], f"{SES}:identity/*", from_sender)
        | grant(["ses:SendEmail", "ses:SendRawEmail"], f"{SES}:configuration-set/{CONFIGURATION_SET}", from_sender)
        | reads_quota_key
        | park,
        "MailEventsFunctionRole": grant(
            "dynamodb:PutItem", TABLE, {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["suppressed#*"]}}
        )
        | reads_quota_key
        | park,
        "SweeperFunctionRole": grant("dynamodb:Query", f"{TABLE}/index/status-updated_at")
        | grant("dynamodb:UpdateItem", TABLE)
        # Captioning re-driven by announcing the upload again: a copy of an upload onto itself.
        | grant("s3:GetObject", f"{UPLOADS}/uploads/*")
        | grant(
            "s3:PutObject",
            f"{UPLOADS}/uploads/*",
            {
                "StringEquals": {"s3:x-amz-metadata-directive": "REPLACE"},
                "StringLike": {"s3:x-amz-copy-source": f"reimagine-uploads-{ACCOUNT}-{REGION}/uploads/*"},
            },
        )
        | grant("s3:ListBucket", UPLOADS),
    }
    # Every function logs and traces; SAM adds the reader of each function's event source.
    managed = {name: {BASIC, XRAY} for name in roles}
    managed["GenerateFunctionRole"].add(QUEUE_READER)
    managed["NotifyFunctionRole"].add(STREAM_READER)
    managed["GeneratePipeRole"] = set()  # written in the template, with its own statements only
    return {name: (frozenset(managed[name]), frozenset(roles[name])) for name in roles}


def granted(template: Template, parameters: dict[str, str]) -> dict[str, Grants]:
    """What each role of the translated template grants, resolved for the sample stack."""
    cloudformation = translated(template, **parameters)
    resolver = Resolver(cloudformation, StackContext(parameters=parameters))
    roles: dict[str, Grants] = {}
    for name, resource in cloudformation["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        if resource.get("Condition") and not resolver.condition(resource["Condition"]):
            continue
        role = resolver.resolve(resource["Properties"])
        grants: set[Grant] = set()
        for policy in role.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                # Allow statements of actions on resources only: NotAction, NotResource and Deny are
                # not part of any allow-list, so they must not slip through as unknown keys.
                assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, statement
                assert statement["Effect"] == "Allow", statement
                grants |= grant(statement["Action"], statement["Resource"], statement.get("Condition"))
        roles[name] = (frozenset(role.get("ManagedPolicyArns", [])), frozenset(grants))
    return roles


SCENARIOS: dict[str, dict[str, str]] = {
    "offline": {},
    "huggingface": {"Provider": "huggingface"},
    "openai": {"Provider": "openai"},
    "openai with an API key": {"Provider": "openai", "OpenAiKeyParameter": "/reimagine/openai/key"},
    "bedrock": {"Provider": "bedrock"},
    "bedrock painting in the stack's region": {"Provider": "bedrock", "BedrockImageRegion": ""},
    "bedrock painting in another region": {"Provider": "bedrock", "BedrockImageRegion": "eu-west-1"},
    "a named quota key": {"QuotaKeyParameter": "/reimagine/quota-key"},
    "moderation by rekognition": {"Moderation": "rekognition"},
    "moderation by openai with an API key": {"Moderation": "openai", "OpenAiKeyParameter": "/reimagine/openai/key"},
    "no moderation": {"Moderation": "none"},
}


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=list(SCENARIOS))
def test_each_role_is_allowed_exactly_what_its_function_needs(template: Template, scenario: str) -> None:
    # Given the template deployed with these parameters
    parameters = SCENARIOS[scenario]
    # When SAM has translated it, roles and all
    roles = granted(template, parameters)
    # Then every role, and only these roles, grants exactly its allow-list
    assert roles == allow_list(parameters)


def test_only_lambda_may_assume_the_roles_sam_makes_for_the_functions(template: Template) -> None:
    cloudformation = translated(template)
    trusts = {
        name: resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        for name, resource in cloudformation["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
        and {"Key": "lambda:createdBy", "Value": "SAM"} in resource["Properties"].get("Tags", [])
    }
    assert set(trusts) == {f"{function}Role" for function in functions(template)}
    assert trusts and all(
        statements
        == [{"Action": ["sts:AssumeRole"], "Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com"]}}]
        for statements in trusts.values()
    ), trusts


def _statement(t: Template, function: str, sid: str) -> dict[str, Any]:
    (statement,) = [s for s in props(t, function)["Policies"][0]["Statement"] if s.get("Sid") == sid]
    return statement


def _stream_event(t: Template) -> None:
    props(t, "SweeperFunction")["Events"]["Changes"] = {
        "Type": "DynamoDB",
        "Properties": {"Stream": {"Fn::GetAtt": ["RequestsTable", "StreamArn"]}, "StartingPosition": "LATEST"},
    }


BUCKET_ARN = "arn:${AWS::Partition}:s3:::${AWS::StackName}-%s-${AWS::AccountId}-${AWS::Region}"
# Grants that stay within the stack (so test_security's scope check passes them) but are more than needed.
BROADER: dict[str, Callable[[Template], None]] = {
    "one more action on the table": lambda t: _statement(t, "ApiFunction", "RequestRecords")["Action"].append(
        "dynamodb:DeleteItem"
    ),
    "delete now on every object of the results bucket": lambda t: _statement(t, "ApiFunction", "DeleteNow").update(
        Resource={"Fn::Sub": f"{BUCKET_ARN % 'results'}/*"}
    ),
    "a SAM policy template on this table": lambda t: props(t, "NotifyFunction")["Policies"].append(
        {"DynamoDBCrudPolicy": {"TableName": {"Ref": "RequestsTable"}}}
    ),
    "every object of the uploads bucket": lambda t: _statement(t, "CaptionFunction", "ReadUploads").update(
        Resource={"Fn::Sub": f"{BUCKET_ARN % 'uploads'}/*"}
    ),
    "a stream event, and SAM's stream reader with it": _stream_event,
    "the results bucket for the caption step": lambda t: _statement(t, "CaptionFunction", "ReadUploads").update(
        Resource={"Fn::Sub": f"{BUCKET_ARN % 'results'}/results/*"}
    ),
    "any write to uploads for the sweeper, not only copies": lambda t: _statement(
        t, "SweeperFunction", "ReannounceUploads"
    ).pop("Condition"),
}


@pytest.mark.parametrize("weakening", BROADER, ids=list(BROADER))
def test_a_broader_grant_breaks_the_allow_list(template: Template, weakening: str) -> None:
    # Given the template with one grant more than its function needs
    weakened = copy.deepcopy(template)
    BROADER[weakening](weakened)
    # Then its roles no longer match the allow-list
    assert granted(weakened, {}) != allow_list({})
