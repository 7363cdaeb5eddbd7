"""Security checks on template.yaml: least privilege, private and TLS-only storage, no secrets in plain sight.

Each check returns its findings, so the same code is run on the real template (which must have none)
and on deliberately weakened copies (which must each be caught): a check that cannot fail proves nothing.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fixtures.template import (
    as_list,
    branches,
    function_env,
    functions,
    load_template,
    props,
    resources,
    translated,
)

Template = dict[str, Any]
Statement = dict[str, Any]

# ---------------------------------------------------------------- IAM


def _policy_statements(document: Any) -> list[Statement]:
    return [s for statement in as_list((document or {}).get("Statement", [])) for s in branches(statement)]


def iam_statements(template: Template) -> Iterator[tuple[str, Statement]]:
    """(where, statement) for every identity policy of the translated template: the roles SAM made for
    the functions (their statements, SAM policy templates expanded) and any role or policy written as such."""
    for name in resources(template, "AWS::IAM::Role"):
        for policy in (p for entry in props(template, name).get("Policies", []) for p in branches(entry)):
            for statement in _policy_statements(policy.get("PolicyDocument")):
                yield f"{name}/{statement.get('Sid', '?')}", statement
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for name in resources(template, kind):
            for statement in _policy_statements(props(template, name).get("PolicyDocument")):
                yield f"{name}/{statement.get('Sid', '?')}", statement


# The AWS managed policies a role may carry (SAM attaches them), and why each may grant on "*".
ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": (
        "every function: logs:CreateLogGroup, CreateLogStream and PutLogEvents, for its own log stream"
    ),
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": (
        "Tracing: Active; X-Ray's PutTraceSegments and sampling reads have no resource-level permissions"
    ),
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": (
        "SAM's for an SQS event: receive, delete and read attributes on any queue (Lambda's poller reads "
        "GenerateQueue with the function's role), and logs"
    ),
    "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole": (
        "SAM's for a DynamoDB event: stream reads on any stream (each RequestStream statement names the "
        "one stream the mapping reads), and logs"
    ),
}


def managed_policies(template: Template) -> Iterator[tuple[str, Any]]:
    """(role, ARN) for every managed policy a role of the translated template is given."""
    for name in resources(template, "AWS::IAM::Role"):
        for arn in as_list(props(template, name).get("ManagedPolicyArns", [])):
            for value in branches(arn):
                yield name, value


def _parameter_named(template: Template, text: str, pattern: str) -> bool:
    match = re.fullmatch(pattern, text)
    return match is not None and match.group("param") in template.get("Parameters", {})


_SSM_PARAMETER = r"arn:\$\{AWS::Partition\}:ssm:\$\{AWS::Region\}:\$\{AWS::AccountId\}:parameter\$\{(?P<param>\w+)\}"
_FOUNDATION_MODEL = r"arn:\$\{AWS::Partition\}:bedrock:\$\{AWS::Region\}::foundation-model/\$\{(?P<param>\w+)\}"


def _one_ssm_parameter(t: Template, s: Statement) -> bool:
    return _parameter_named(t, s["Resource"]["Fn::Sub"], _SSM_PARAMETER)


def _one_foundation_model(t: Template, s: Statement) -> bool:
    return _parameter_named(t, s["Resource"]["Fn::Sub"], _FOUNDATION_MODEL)


_CHAIN_MODEL = (
    r"arn:\$\{AWS::Partition\}:bedrock:\$\{(?P<region>AWS::Region|ImageRegion)\}:"
    r"(\$\{AWS::AccountId\}:inference-profile|:foundation-model)/\$\{Model\}"
)
# Pictures may be painted in another region than the stack's: the one named, else the stack's own.
_IMAGE_REGION = {"Fn::If": ["HasBedrockImageRegion", {"Ref": "BedrockImageRegion"}, {"Ref": "AWS::Region"}]}


def _chain_item(t: Template, resource: Any) -> bool:
    """`!Sub [<model or profile ARN>, {Model: !Select [i, !Split [",", "${Chain},${Chain},${Chain}"]]}]`."""
    try:
        text, variables = resource["Fn::Sub"]
        index, (delimiter, tripled) = (
            variables["Model"]["Fn::Select"][0],
            variables["Model"]["Fn::Select"][1]["Fn::Split"],
        )
        chain = re.fullmatch(r"\$\{(\w+)\},\$\{\1\},\$\{\1\}", tripled["Fn::Sub"])
    except (KeyError, TypeError, ValueError):
        return False
    arn = re.fullmatch(_CHAIN_MODEL, text)
    region_variables = {"ImageRegion": _IMAGE_REGION} if arn and arn.group("region") == "ImageRegion" else {}
    return (
        arn is not None
        and {name: value for name, value in variables.items() if name != "Model"} == region_variables
        and index in (0, 1, 2)
        and delimiter == ","
        and chain is not None
        and chain.group(1) in t.get("Parameters", {})
    )


def _each_model_of_a_chain(t: Template, s: Statement) -> bool:
    return all(_chain_item(t, r) for r in as_list(s["Resource"]))


def _models_only_through_the_chains_profiles(t: Template, s: Statement) -> bool:
    profiles = s.get("Condition", {}).get("StringEquals", {}).get("bedrock:InferenceProfileArn", [])
    return (
        s["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:bedrock:*::foundation-model/*"}
        and bool(profiles)
        and all(_chain_item(t, p) and ":inference-profile/" in p["Fn::Sub"][0] for p in as_list(profiles))
    )


def _subscribe_to_the_configured_products(t: Template, s: Statement) -> bool:
    return (
        s["Action"] == "aws-marketplace:Subscribe"
        and s["Resource"] == "*"
        and s.get("Condition")
        == {"ForAnyValue:StringEquals": {"aws-marketplace:ProductId": {"Ref": "BedrockMarketplaceProductIds"}}}
    )


def _view_subscriptions_only(t: Template, s: Statement) -> bool:
    return s["Action"] == "aws-marketplace:ViewSubscriptions" and s["Resource"] == "*"


def _moderation_api(action: str) -> Callable[[Template, Statement], bool]:
    """One moderation action, on "*" (these APIs have no resource types), with no other action."""
    return lambda t, s: s["Action"] == action and s["Resource"] == "*"


def _identities_sending_from_the_sender(t: Template, s: Statement) -> bool:
    return s["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/*"
    } and s.get("Condition") == {"StringEquals": {"ses:FromAddress": {"Ref": "SenderEmail"}}}


# What must reach beyond this stack's own resources (by Sid), the reason it may, and exactly how far.
ALLOWED_BEYOND_THE_STACK: dict[str, tuple[str, Callable[[Template, Statement], bool]]] = {
    "ProviderToken": (
        "the Hugging Face token is an SSM parameter the operator creates; the grant names that one parameter",
        _one_ssm_parameter,
    ),
    "QuotaKey": (
        "the quota hashing key is an SSM parameter the operator creates when named (the grant names only "
        "it); otherwise it is this stack's generated secret, which needs no exception",
        _one_ssm_parameter,
    ),
    "ProviderKey": (
        "the optional OpenAI-compatible API key is an SSM parameter the operator creates; the grant names only it",
        _one_ssm_parameter,
    ),
    "CaptionModel": (
        "Bedrock models belong to AWS, not to a stack; the grant names each model of the configured chain, "
        "as a model id in this region and as an inference profile of this account",
        _each_model_of_a_chain,
    ),
    "CaptionModelViaProfile": (
        "an inference profile invokes its model in whichever region it routes to; allowed only through "
        "the chain's own profiles (bedrock:InferenceProfileArn), each of which routes to one model",
        _models_only_through_the_chains_profiles,
    ),
    "CaptionModelSubscription": (
        "Marketplace has no resource types; Bedrock subscribes on a third-party model's first use, "
        "held to the configured product ids",
        _subscribe_to_the_configured_products,
    ),
    "CaptionModelSubscriptions": ("Marketplace has no resource types; a read-only check", _view_subscriptions_only),
    "ImageModel": (
        "as CaptionModel, for the image chain, in the region that paints (BedrockImageRegion, else this one)",
        _each_model_of_a_chain,
    ),
    "ImageModelViaProfile": ("as CaptionModelViaProfile", _models_only_through_the_chains_profiles),
    "ImageModelSubscription": ("as CaptionModelSubscription", _subscribe_to_the_configured_products),
    "ImageModelSubscriptions": ("as CaptionModelSubscriptions", _view_subscriptions_only),
    "ModerateUpload": (
        "Rekognition's DetectModerationLabels has no resource types; granted only when Moderation=rekognition",
        _moderation_api("rekognition:DetectModerationLabels"),
    ),
    "ModeratePicture": ("as ModerateUpload", _moderation_api("rekognition:DetectModerationLabels")),
    "ModerateCaption": (
        "Comprehend's DetectToxicContent has no resource types; granted only when Moderation=rekognition",
        _moderation_api("comprehend:DetectToxicContent"),
    ),
    "SendFromSender": (
        "SES authorises against every identity involved (in the sandbox, recipients too), so the grant "
        "covers this account's identities, but only for mail from the configured sender",
        _identities_sending_from_the_sender,
    ),
}

# Named buckets are `${AWS::StackName}-<purpose>-...`: an ARN of one, optionally a key prefix's objects.
_OWN_BUCKET = re.compile(
    r"arn:\$\{AWS::Partition\}:s3:::\$\{AWS::StackName\}-[a-z]+-\$\{AWS::AccountId\}-\$\{AWS::Region\}"
    r"(/[A-Za-z0-9_-]+/\*)?"
)
# `${SomeResource.Arn}` followed by a sub-resource path without wildcards (a table's index, say).
_OWN_SUB = re.compile(r"\$\{(?P<resource>\w+)\.Arn\}(/[A-Za-z0-9_.-]+)*")
# An ARN built from a resource's name, for types with no Arn attribute (an SES configuration set).
_OWN_NAMED_ARN = re.compile(
    r"arn:\$\{AWS::Partition\}:[a-z0-9-]+:\$\{AWS::Region\}:\$\{AWS::AccountId\}:[a-z-]+/\$\{(?P<resource>\w+)\}"
)


def _own_resource(template: Template, resource: Any) -> bool:
    """Whether `resource` is (part of) a resource of this stack."""
    own = template["Resources"]
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        att = resource["Fn::GetAtt"]
        return (att.split(".", 1)[0] if isinstance(att, str) else att[0]) in own
    if isinstance(resource, dict) and "Ref" in resource:
        return resource["Ref"] in own
    if isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), str):
        text = resource["Fn::Sub"]
        if _OWN_BUCKET.fullmatch(text):
            return True
        match = _OWN_SUB.fullmatch(text) or _OWN_NAMED_ARN.fullmatch(text)
        return match is not None and match.group("resource") in own
    return False


def iam_findings(template: Template) -> list[str]:
    """What the translated template grants beyond this stack's own resources, and how."""
    findings = [
        f"{role}: managed policy {json.dumps(arn)}"
        for role, arn in managed_policies(template)
        if arn not in ALLOWED_MANAGED_POLICIES
    ]
    for where, statement in iam_statements(template):
        if statement.get("Effect") != "Allow":
            continue  # denies (TLS only) may be as wide as they like
        for action in as_list(statement.get("Action", [])) + as_list(statement.get("NotAction", [])):
            if "*" in str(action):
                findings.append(f"{where}: wildcard action {action}")
        if "NotAction" in statement or "NotResource" in statement:
            findings.append(f"{where}: NotAction/NotResource grants everything else")
        allowed = ALLOWED_BEYOND_THE_STACK.get(statement.get("Sid", ""))
        for resource in as_list(statement.get("Resource", [])):
            if _own_resource(template, resource):
                continue
            if allowed is None or not allowed[1](template, statement):
                what = "Resource *" if resource == "*" else f"{json.dumps(resource)} is not this stack's"
                findings.append(f"{where}: {what}")
    return findings


# ---------------------------------------------------------------- storage


def _tls_only(template: Template, bucket: str) -> bool:
    for policy in resources(template, "AWS::S3::BucketPolicy").values():
        if policy["Properties"].get("Bucket") != {"Ref": bucket}:
            continue
        for s in _policy_statements(policy["Properties"].get("PolicyDocument")):
            covered = as_list(s.get("Resource"))
            if (
                s.get("Effect") == "Deny"
                and s.get("Principal") in ("*", {"AWS": "*"})
                and s.get("Action") in ("s3:*", ["s3:*"])
                and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
                and {"Fn::GetAtt": [bucket, "Arn"]} in covered
                and {"Fn::Sub": f"${{{bucket}.Arn}}/*"} in covered
            ):
                return True
    return False


BLOCK_ALL = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")


def storage_findings(template: Template) -> list[str]:
    findings = []
    for name, bucket in resources(template, "AWS::S3::Bucket").items():
        p = bucket.get("Properties", {})
        block = p.get("PublicAccessBlockConfiguration", {})
        if not all(block.get(flag) is True for flag in BLOCK_ALL):
            findings.append(f"{name}: public access not fully blocked")
        rules = p.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        if not any(r.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules):
            findings.append(f"{name}: no default encryption")
        if not _tls_only(template, name):
            findings.append(f"{name}: no TLS-only (aws:SecureTransport) deny policy")
    for name, queue in resources(template, "AWS::SQS::Queue").items():
        p = queue.get("Properties", {})
        if p.get("SqsManagedSseEnabled") is not True and not p.get("KmsMasterKeyId"):
            findings.append(f"{name}: queue without server-side encryption")
    for name, topic in resources(template, "AWS::SNS::Topic").items():
        if not topic.get("Properties", {}).get("KmsMasterKeyId"):
            findings.append(f"{name}: topic without server-side encryption")
    for name, table in resources(template, "AWS::DynamoDB::Table").items():
        if table.get("Properties", {}).get("SSESpecification", {}).get("SSEEnabled") is not True:
            findings.append(f"{name}: table without SSESpecification")
    return findings


# ---------------------------------------------------------------- secrets

SECRET_NAME = re.compile(r"token|secret|passw|credential|private|(^|[_a-z])key([_A-Z]|$)", re.IGNORECASE)
SECRET_VALUE = re.compile(
    r"hf_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|sk-[A-Za-z0-9_-]{20,}|-----BEGIN|xox[abp]-"
    r"|(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{32,}={0,2}(?![A-Za-z0-9+/])"  # a long base64/hex run
)
SSM_NAME_PATTERNS = {"^/[A-Za-z0-9_.\\-/]+$", "^$|^/[A-Za-z0-9_.\\-/]+$"}


def _is_ssm_name_parameter(spec: dict[str, Any]) -> bool:
    """A parameter that can only ever hold the NAME of an SSM parameter (or nothing)."""
    if str(spec.get("Type", "")).startswith("AWS::SSM::Parameter::Value"):
        return True
    default = str(spec.get("Default", ""))
    return spec.get("AllowedPattern") in SSM_NAME_PATTERNS and (default == "" or default.startswith("/"))


def _is_own_secret(template: Template, ref: Any) -> bool:
    resource = template.get("Resources", {}).get(ref) if isinstance(ref, str) else None
    return isinstance(resource, dict) and resource.get("Type") == "AWS::SecretsManager::Secret"


def secret_findings(template: Template) -> list[str]:
    findings = []
    parameters = template.get("Parameters", {})
    for name, spec in parameters.items():
        if SECRET_NAME.search(name) and spec.get("NoEcho") is not True and not _is_ssm_name_parameter(spec):
            findings.append(f"parameter {name}: looks secret but is neither NoEcho nor an SSM parameter name")
        if SECRET_VALUE.search(json.dumps(spec.get("Default", ""))):
            findings.append(f"parameter {name}: default looks like a secret")
    for function in functions(template):
        for variable, value in function_env(template, function).items():
            literals = [v for v in branches(value) if isinstance(v, str | int | float)]
            if any(SECRET_VALUE.search(str(v)) for v in literals):
                findings.append(f"{function}.{variable}: value looks like a secret")
            if SECRET_NAME.search(variable):
                for v in branches(value):
                    ref = v.get("Ref") if isinstance(v, dict) else None
                    if _is_own_secret(template, ref):
                        continue  # the ARN of a Secrets Manager secret of this stack, read at run time
                    if ref not in parameters or not _is_ssm_name_parameter(parameters[ref]):
                        findings.append(f"{function}.{variable}: must be the NAME of an SSM parameter or a secret")
    for name, secret in resources(template, "AWS::SecretsManager::Secret").items():
        # A secret's value is made at deploy time, never written into the template (or its history).
        if "SecretString" in secret.get("Properties", {}) or "GenerateSecretString" not in secret.get("Properties", {}):
            findings.append(f"{name}: the value must be generated (GenerateSecretString), not written")
    return findings


# ---------------------------------------------------------------- the real template


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template()


@pytest.fixture(scope="module")
def cloudformation(template: Template) -> Template:
    """The template as SAM translates it: the IAM that is deployed, with what SAM adds."""
    return translated(template)


def test_every_iam_grant_is_specific_to_this_stack(cloudformation: Template) -> None:
    assert len(list(iam_statements(cloudformation))) >= 10  # the checks have something to check
    # One role per function, made by SAM, besides any the template writes itself.
    written = resources(load_template(), "AWS::IAM::Role")
    assert len(resources(cloudformation, "AWS::IAM::Role")) == len(functions(load_template())) + len(written)
    assert iam_findings(cloudformation) == []


def test_every_exception_to_the_stack_scope_is_still_used(cloudformation: Template) -> None:
    # An allow-list entry nobody needs any more is an unreviewed hole waiting to be reused.
    sids = {s.get("Sid") for _, s in iam_statements(cloudformation)}
    assert set(ALLOWED_BEYOND_THE_STACK) <= sids
    assert all(reason for reason, _ in ALLOWED_BEYOND_THE_STACK.values())
    assert {arn for _, arn in managed_policies(cloudformation)} == set(ALLOWED_MANAGED_POLICIES)


def test_storage_is_private_encrypted_and_tls_only(template: Template) -> None:
    assert resources(template, "AWS::S3::Bucket") and resources(template, "AWS::SQS::Queue")
    assert storage_findings(template) == []


def test_no_secret_is_a_plain_parameter_or_environment_variable(template: Template) -> None:
    assert secret_findings(template) == []


# ---------------------------------------------------------------- the checks catch what they are for


def _weaken(template: Template, change: Callable[[Template], None]) -> Template:
    weakened = copy.deepcopy(template)
    change(weakened)
    return weakened


def _first_statement(t: Template, function: str, sid: str) -> Statement:
    (statement,) = [s for s in _policy_statements(props(t, function)["Policies"][0]) if s.get("Sid") == sid]
    return statement


def _add_role(t: Template) -> None:
    t["Resources"]["ExtraRole"] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {},
            "Policies": [
                {
                    "PolicyName": "all",
                    "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
                }
            ],
        },
    }


def _add_policy(function: str, policy: Any) -> Callable[[Template], None]:
    return lambda t: props(t, function)["Policies"].append(policy)


IAM_WEAKENINGS: dict[str, Callable[[Template], None]] = {
    "wildcard action": lambda t: _first_statement(t, "ApiFunction", "RequestRecords").update(Action="dynamodb:*"),
    "service wildcard": lambda t: _first_statement(t, "NotifyFunction", "ReadResults").update(Action="s3:Get*"),
    "resource *": lambda t: _first_statement(t, "CaptionFunction", "ReadUploads").update(Resource="*"),
    "another stack's bucket": lambda t: _first_statement(t, "CaptionFunction", "ReadUploads").update(
        Resource={"Fn::Sub": "arn:${AWS::Partition}:s3:::someone-elses-bucket/*"}
    ),
    "every object of every bucket": lambda t: _first_statement(t, "CaptionFunction", "ReadUploads").update(
        Resource={"Fn::Sub": "arn:${AWS::Partition}:s3:::*"}
    ),
    "any table in the account": lambda t: _first_statement(t, "GenerateFunction", "RequestRecords").update(
        Resource={"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"}
    ),
    "any index of the table": lambda t: _first_statement(t, "ApiFunction", "RequestRecords").update(
        Resource={"Fn::Sub": "${RequestsTable.Arn}/index/*"}
    ),
    "any model": lambda t: _first_statement(t, "CaptionFunction", "CaptionModel").update(
        Resource={"Fn::Sub": "arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/*"}
    ),
    "a model outside the chain": lambda t: _first_statement(t, "GenerateFunction", "ImageModel")["Resource"].append(
        {"Fn::Sub": "arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/amazon.nova-reel-v1:0"}
    ),
    "image models in any region": lambda t: _first_statement(t, "GenerateFunction", "ImageModel")["Resource"][0][
        "Fn::Sub"
    ][1].update(ImageRegion="*"),
    "profiles of any region": lambda t: _first_statement(t, "GenerateFunction", "ImageModelViaProfile")["Condition"][
        "StringEquals"
    ]["bedrock:InferenceProfileArn"][0]["Fn::Sub"][1].update(ImageRegion="*"),
    "any model through any profile": lambda t: _first_statement(t, "CaptionFunction", "CaptionModelViaProfile").pop(
        "Condition"
    ),
    "subscribe to any product": lambda t: _first_statement(t, "GenerateFunction", "ImageModelSubscription").pop(
        "Condition"
    ),
    "unsubscribe too": lambda t: _first_statement(t, "CaptionFunction", "CaptionModelSubscriptions").update(
        Action=["aws-marketplace:ViewSubscriptions", "aws-marketplace:Unsubscribe"]
    ),
    "SES without the sender condition": lambda t: _first_statement(t, "NotifyFunction", "SendFromSender").pop(
        "Condition"
    ),
    "any parameter": lambda t: _first_statement(t, "CaptionFunction", "ProviderToken").update(
        Resource={"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/*"}
    ),
    "NotResource": lambda t: _first_statement(t, "ApiFunction", "RequestRecords").update(
        NotResource={"Fn::GetAtt": ["RequestsTable", "Arn"]}
    ),
    "an admin role": _add_role,
    # Only visible once SAM has translated the template: what a policy name or template becomes.
    "an AWS managed policy by name": _add_policy("SweeperFunction", "AmazonDynamoDBFullAccess"),
    "a SAM policy template on another table": _add_policy(
        "SweeperFunction", {"DynamoDBReadPolicy": {"TableName": "someone-elses-table"}}
    ),
    "a SAM policy template on this table": _add_policy(
        "NotifyFunction", {"DynamoDBCrudPolicy": {"TableName": {"Ref": "RequestsTable"}}}
    ),
}


@pytest.mark.parametrize("weakening", IAM_WEAKENINGS, ids=list(IAM_WEAKENINGS))
def test_the_iam_check_catches(template: Template, weakening: str) -> None:
    assert iam_findings(translated(_weaken(template, IAM_WEAKENINGS[weakening])))


def _bucket_policy_statements(t: Template, bucket: str) -> list[Statement]:
    (policy,) = [
        p for p in resources(t, "AWS::S3::BucketPolicy").values() if p["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    return policy["Properties"]["PolicyDocument"]["Statement"]


STORAGE_WEAKENINGS: dict[str, Callable[[Template], None]] = {
    "public policies allowed": lambda t: props(t, "UploadsBucket")["PublicAccessBlockConfiguration"].update(
        RestrictPublicBuckets=False
    ),
    "no public access block": lambda t: props(t, "ResultsBucket").pop("PublicAccessBlockConfiguration"),
    "no encryption": lambda t: props(t, "ResultsBucket").pop("BucketEncryption"),
    "no TLS deny": lambda t: _bucket_policy_statements(t, "UploadsBucket").clear(),
    "TLS deny on the bucket but not its objects": lambda t: _bucket_policy_statements(t, "ResultsBucket")[0].update(
        Resource=[{"Fn::GetAtt": ["ResultsBucket", "Arn"]}]
    ),
    "a new bucket without anything": lambda t: t["Resources"].update(Extra={"Type": "AWS::S3::Bucket"}),
    "queue without SSE": lambda t: props(t, "FailureQueue").update(SqsManagedSseEnabled=False),
    "topic without SSE": lambda t: t["Resources"].update(Topic={"Type": "AWS::SNS::Topic", "Properties": {}}),
}


@pytest.mark.parametrize("weakening", STORAGE_WEAKENINGS, ids=list(STORAGE_WEAKENINGS))
def test_the_storage_check_catches(template: Template, weakening: str) -> None:
    assert storage_findings(_weaken(template, STORAGE_WEAKENINGS[weakening]))


SECRET_WEAKENINGS: dict[str, Callable[[Template], None]] = {
    "a plain token parameter": lambda t: t["Parameters"].update(
        HfToken={"Type": "String", "Default": "", "Description": "the token"}
    ),
    "a plain signing key parameter": lambda t: t["Parameters"].update(
        QuotaKey={"Type": "String", "Default": "changeme", "Description": "the key"}
    ),
    "a token in an environment variable": lambda t: props(t, "CaptionFunction")["Environment"]["Variables"].update(
        HF_TOKEN="hf_" + "a1B2" * 8
    ),
    "an access key in a global variable": lambda t: t["Globals"]["Function"]["Environment"]["Variables"].update(
        SOME_SETTING="AKIA" + "ABCDEFGHIJKLMNOP"
    ),
    "a long random literal": lambda t: props(t, "ApiFunction")["Environment"]["Variables"].update(
        QUOTA_SALT="Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"
    ),
    "a secret-named variable set to a literal": lambda t: props(t, "ApiFunction")["Environment"]["Variables"].update(
        QUOTA_KEY_PARAMETER="letmein"
    ),
    "a secret-named variable set to a parameter's value": lambda t: props(t, "ApiFunction")["Environment"][
        "Variables"
    ].update(QUOTA_KEY_SECRET={"Ref": "SenderEmail"}),
    "a secret written into the template": lambda t: props(t, "QuotaKeySecret").update(
        SecretString="Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"
    ),
}


@pytest.mark.parametrize("weakening", SECRET_WEAKENINGS, ids=list(SECRET_WEAKENINGS))
def test_the_secret_check_catches(template: Template, weakening: str) -> None:
    assert secret_findings(_weaken(template, SECRET_WEAKENINGS[weakening]))


def test_a_noecho_parameter_is_accepted() -> None:
    t: Template = {"Parameters": {"ApiToken": {"Type": "String", "NoEcho": True}}, "Resources": {}, "Globals": {}}
    assert secret_findings(t) == []
