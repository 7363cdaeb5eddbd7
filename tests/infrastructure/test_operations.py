"""The operator's path, as template and repository contracts: alarms reach someone, the dashboard shows
metrics that exist, the guided deploy asks in groups, the data's fate on delete is decided, and the
default deploy settings never send from the example address.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import subprocess
import tomllib
from typing import Any

import pytest

from reimagine_tools.template import Resolver, StackContext
from tests.fixtures.template import ROOT, functions, load_template, props, resources

OPERATIONS = ROOT / "docs" / "operations.md"
EMAIL = "oncall@example.org"
TOPIC = "arn:aws:sns:us-east-1:123456789012:pager"
# Every way the alarm parameters can be set.
ALARM_SCENARIOS = [
    pytest.param({}, id="neither"),
    pytest.param({"AlarmEmail": EMAIL}, id="email"),
    pytest.param({"AlarmTopicArn": TOPIC}, id="topic"),
    pytest.param({"AlarmEmail": EMAIL, "AlarmTopicArn": TOPIC}, id="both"),
]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: res["Properties"] for name, res in resources(template, "AWS::CloudWatch::Alarm").items()}


def _active(template: dict[str, Any], resolver: Resolver, logical_id: str) -> bool:
    condition = template["Resources"][logical_id].get("Condition")
    return condition is None or resolver.condition(condition)


# ---------------------------------------------------------------- alarms reach someone


@pytest.mark.parametrize("parameters", ALARM_SCENARIOS)
def test_every_alarm_notifies_the_stacks_topic_in_every_scenario(
    template: dict[str, Any], parameters: dict[str, str]
) -> None:
    # Given the alarm parameters set (or not) as an operator might
    resolver = Resolver(template, StackContext(parameters=parameters))
    stack_topic = resolver.ref("AlarmTopic")
    expected = [stack_topic, TOPIC] if "AlarmTopicArn" in parameters else [stack_topic]
    # When the alarms' actions are resolved, Then every alarm notifies the stack's topic (and the given one)
    actions = {name: resolver.resolve(alarm["AlarmActions"]) for name, alarm in _alarms(template).items()}
    ok_actions = {name: resolver.resolve(alarm["OKActions"]) for name, alarm in _alarms(template).items()}
    assert len(actions) >= 8
    assert actions == ok_actions == dict.fromkeys(actions, expected)


@pytest.mark.parametrize("parameters", ALARM_SCENARIOS)
def test_the_alarm_email_is_subscribed_only_when_given(template: dict[str, Any], parameters: dict[str, str]) -> None:
    resolver = Resolver(template, StackContext(parameters=parameters))
    subscriptions = [
        resolver.resolve(props(template, name))
        for name in resources(template, "AWS::SNS::Subscription")
        if _active(template, resolver, name)
    ]
    expected = [{"TopicArn": resolver.ref("AlarmTopic"), "Protocol": "email", "Endpoint": EMAIL}]
    assert subscriptions == (expected if "AlarmEmail" in parameters else [])


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(template: dict[str, Any]) -> None:
    # CloudWatch cannot publish to a topic under the AWS managed key (alias/aws/sns).
    assert props(template, "AlarmTopic")["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key = props(template, "AlarmTopicKey")
    assert key["EnableKeyRotation"] is True
    (alarms,) = [
        s for s in key["KeyPolicy"]["Statement"] if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert set(alarms["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    (publish,) = [
        s for s in props(template, "AlarmTopicPolicy")["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"
    ]
    assert (publish["Principal"], publish["Action"]) == ({"Service": "cloudwatch.amazonaws.com"}, "sns:Publish")


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_alarm_says_what_to_do_and_links_its_runbook(template: dict[str, Any]) -> None:
    # Given the operations guide's sections
    anchors = _anchors(OPERATIONS.read_text())
    for name, alarm in _alarms(template).items():
        description = alarm["AlarmDescription"]
        # Then each alarm's description ends in a runbook link to a section that exists
        link = re.search(r"Runbook - docs/operations\.md#([\w-]+)$", description)
        assert link, f"{name}: no runbook link in {description!r}"
        assert link.group(1) in anchors, f"{name}: docs/operations.md has no section #{link.group(1)}"
        assert len(description) <= 1024


# ---------------------------------------------------------------- dashboard

# AWS's own metrics the dashboard may name, per namespace, with the dimension it is read by (restated
# on purpose from the services' documentation: a typo there shows an empty graph, not an error).
AWS_METRICS = {
    "AWS/Lambda": ({"Errors", "Throttles", "ConcurrentExecutions", "Duration", "Invocations"}, "FunctionName"),
    "AWS/SQS": ({"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"}, "QueueName"),
    "AWS/ApiGateway": ({"Count", "4xx", "5xx", "Latency", "IntegrationLatency"}, "ApiId"),
    "AWS/SES": ({"Reputation.BounceRate", "Reputation.ComplaintRate", "Send", "Bounce", "Complaint"}, None),
}
# What each f-string metric name's placeholder takes (StepOutcome.outcome; mail_events' kinds).
OUTCOMES = {"done", "skipped", "failed", "retry", "rejected"}
MAIL_KINDS = {"bounce_permanent", "bounce_transient", "bounce_undetermined", "complaint"}


def published_metrics() -> set[str]:
    """Every metric name the functions' code publishes (add_metric), f-strings expanded."""
    names: set[str] = set()
    prefixes = {"Caption_": OUTCOMES, "MailEvent_": MAIL_KINDS}
    trees = [ast.parse(source.read_text()) for source in (ROOT / "functions" / "reimagine").rglob("*.py")]
    calls = [node for tree in trees for node in ast.walk(tree) if isinstance(node, ast.Call)]
    # The stream and queue handlers publish f"{step_name.title()}_{outcome}" for the step they run.
    steps = {
        str(k.value.value).title()
        for c in calls
        for k in c.keywords
        if k.arg == "step_name" and isinstance(k.value, ast.Constant)
    }
    for node in calls:
        # add_metric, or single_metric for a metric with a dimension of its own (ContentBlocked's stage)
        if getattr(node.func, "attr", getattr(node.func, "id", "")) not in ("add_metric", "single_metric"):
            continue
        name = next(k.value for k in node.keywords if k.arg == "name")
        if isinstance(name, ast.Constant):
            names.add(str(name.value))
        elif isinstance(name, ast.JoinedStr) and isinstance(name.values[0], ast.Constant):
            prefix = str(name.values[0].value)
            names.update(prefix + suffix for suffix in prefixes.get(prefix, ()))
        elif isinstance(name, ast.JoinedStr) and ast.unparse(name.values[0]).endswith("step_name.title()}"):
            names.update(f"{step}_{outcome}" for step in steps for outcome in OUTCOMES)
    # An API refusal is counted under the names in its `counted_as` (handlers/api_app.refuse); the quota
    # errors' f"Refused{code}" takes each error class's `code` of that module in CamelCase.
    for tree in trees:
        codes = {
            str(node.value.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and [ast.unparse(t) for t in node.targets] == ["code"]
            and isinstance(node.value, ast.Constant)
        }
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Assign) and ast.unparse(node.targets[0]).endswith("counted_as")):
                continue
            for element in getattr(node.value, "elts", []):
                if isinstance(element, ast.Constant):
                    names.add(str(element.value))
                elif isinstance(element, ast.JoinedStr) and ast.unparse(element).startswith("f'Refused{"):
                    names.update("Refused" + code.title().replace("_", "") for code in codes)
    return names


def _dashboard(template: dict[str, Any]) -> dict[str, Any]:
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    # ${Logical} and ${Logical.Attribute} stand for the resource; its name is kept to check it exists.
    return json.loads(re.sub(r"\$\{([^}]+)\}", lambda m: "@" + m.group(1), body))


def _metrics(dashboard: dict[str, Any]) -> list[list[Any]]:
    return [m for w in dashboard["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]]


def test_the_dashboard_names_only_metrics_that_are_published(template: dict[str, Any]) -> None:
    # Given the metrics the code publishes and AWS's own
    published = published_metrics()
    for metric in _metrics(_dashboard(template)):
        namespace, name, *rest = metric
        dimensions = [d for d in rest if not isinstance(d, dict)]
        # Then each graphed metric exists, read by the dimension it is published with
        if namespace == "Reimagine":
            assert name in published, f"{name} is not published by functions/reimagine"
            # ContentBlocked is published once per stage (single_metric with a `stage` dimension).
            extra = ["stage", dimensions[3]] if name == "ContentBlocked" and len(dimensions) == 4 else []
            assert dimensions == ["service", "reimagine", *extra], metric
        else:
            known, dimension = AWS_METRICS[namespace]
            assert name in known, metric
            assert dimensions[:1] == ([dimension] if dimension else []), metric
            for value in dimensions[1::2]:
                assert value.startswith("@") and value[1:].split(".")[0] in template["Resources"], metric


def test_the_dashboard_watches_every_function_queue_and_the_time_users_wait(template: dict[str, Any]) -> None:
    graphed = {
        (m[0], m[1], m[3] if len(m) > 3 and isinstance(m[3], str) else None) for m in _metrics(_dashboard(template))
    }
    for metric in ("Errors", "Throttles", "ConcurrentExecutions"):
        assert {f for ns, name, f in graphed if (ns, name) == ("AWS/Lambda", metric)} == {
            f"@{fn}" for fn in functions(template)
        }, metric
    for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
        assert {q for ns, name, q in graphed if (ns, name) == ("AWS/SQS", metric)} == {
            f"@{queue}.QueueName" for queue in resources(template, "AWS::SQS::Queue")
        }, metric
    stats = {
        m[-1].get("stat")
        for m in _metrics(_dashboard(template))
        if m[1] == "EndToEndSeconds" and isinstance(m[-1], dict)
    }
    assert stats == {"p50", "p95"}
    for name in ("RequestsCreated", "Generate_done", "ModelFallback", "Notify_done", "MailEvent_complaint"):
        assert ("Reimagine", name, "reimagine") in graphed, name


# ---------------------------------------------------------------- guided deploy


def test_every_parameter_is_in_exactly_one_group_and_labelled(template: dict[str, Any]) -> None:
    interface = template["Metadata"]["AWS::CloudFormation::Interface"]
    grouped = [p for group in interface["ParameterGroups"] for p in group["Parameters"]]
    assert sorted(grouped) == sorted(template["Parameters"])
    assert set(interface["ParameterLabels"]) == set(template["Parameters"])
    labels = [g["Label"]["default"].split(" ")[0] for g in interface["ParameterGroups"]]
    assert labels == ["Provider", "Mail", "Safety", "Operations", "Limits", "Models"]


def test_guided_deploy_asks_the_decisions_first(template: dict[str, Any]) -> None:
    # `sam deploy --guided` asks in the order of Parameters (it does not read the Interface).
    assert list(template["Parameters"])[:3] == ["Provider", "SenderEmail", "AlarmEmail"]


def _overrides(text: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', text)}


@pytest.mark.parametrize("environment", ["default", "prod"])
def test_deploys_to_aws_refuse_to_send_from_the_example_address(template: dict[str, Any], environment: str) -> None:
    # Given the samconfig environment that deploys to AWS
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    sender = _overrides(config[environment]["deploy"]["parameters"]["parameter_overrides"])["SenderEmail"]
    # Then its sender is a placeholder CloudFormation refuses (the parameter's pattern), never the example
    pattern = template["Parameters"]["SenderEmail"]["AllowedPattern"]
    assert re.fullmatch(pattern, sender) is None, sender
    assert "SenderEmail" in sender


# ---------------------------------------------------------------- teardown and data


def test_data_resources_have_a_decided_fate_on_delete_and_replace(template: dict[str, Any]) -> None:
    fate = {
        name: (res.get("DeletionPolicy"), res.get("UpdateReplacePolicy"))
        for name, res in template["Resources"].items()
        if res["Type"] in ("AWS::S3::Bucket", "AWS::DynamoDB::Table")
    }
    assert fate == {
        "UploadsBucket": ("Delete", "Delete"),
        "ResultsBucket": ("Delete", "Delete"),
        "RequestsTable": ("Delete", "Retain"),
    }
    # The safety net of a deleted table: DynamoDB keeps a 35-day backup when point-in-time recovery is on.
    assert props(template, "RequestsTable")["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_the_changelog_has_an_upgrading_section_for_the_index_change() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    upgrading = changelog.split("### Upgrading", 1)[1].split("\n## ", 1)[0]
    assert "status-updated_at" in upgrading


# ---------------------------------------------------------------- the repository


def test_the_local_outbox_is_not_committed() -> None:
    result = subprocess.run(
        ["git", "check-ignore", "-q", ".reimagine/outbox/1.eml"], cwd=ROOT, capture_output=True, check=False
    )
    assert result.returncode == 0


def test_the_operations_guide_covers_the_operators_path() -> None:
    anchors = _anchors(OPERATIONS.read_text())
    for section in (
        "deploy",
        "ses-production-access",
        "custom-domain",
        "logs",
        "dashboard",
        "alarms-and-runbooks",
        "upgrading",
        "rolling-back",
        "teardown",
        "costs",
        "limits",
    ):
        assert section in anchors, section


# ---------------------------------------------------------------- a lighter first run

# Imported only for type checking, or provided by Lambda's runtime (never installed locally for it).
NOT_INSTALLED = {"mypy_boto3_", "snapshot_restore_py"}


def _closure(requirements: list[str]) -> set[str]:
    """Every distribution `pip install` of these requirements brings (as installed here), extras included."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in found:
            continue
        found.update({key, name})
        try:
            declared = requires(name) or []
        except PackageNotFoundError:
            continue
        for line in declared:
            dep = Requirement(line)
            extras = req.extras or {""}
            if dep.marker is None or any(dep.marker.evaluate({"extra": extra}) for extra in extras):
                todo.append(dep)
    return {n for n in found if "[" not in n}


def test_the_cli_and_the_local_stack_need_only_what_the_local_extra_installs() -> None:
    # Given what `pip install -e '.[local]'` (make demo) installs
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    installed = _closure(["reimagine[local]"])
    providers = packages_distributions()
    # When every module the CLI, the local stack and the functions import is looked up
    missing = set()
    for package in (
        ROOT / "infra" / "reimagine_emulator",
        ROOT / "infra" / "reimagine_tools",
        ROOT / "functions" / "reimagine",
    ):
        for source in package.rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                # A module run in a child process (`python -m awslambdaric`) is needed as much as an import.
                if isinstance(node, ast.List) and len(node.elts) > 2:
                    values = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
                    names += [str(v) for k, v in itertools.pairwise(values) if k == "-m" and v]
                for top in {name.split(".")[0] for name in names}:
                    if top in ("reimagine", "reimagine_tools", "reimagine_emulator") or any(
                        top.startswith(n) for n in NOT_INSTALLED
                    ):
                        continue
                    dists = {canonicalize_name(d) for d in providers.get(top, [])}
                    if dists and not dists & installed:
                        missing.add((top, source.relative_to(ROOT).as_posix()))
    # Then each comes with that extra: `make demo` needs no developer tools
    assert missing == set()


def test_the_developer_tools_are_not_in_the_first_run() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    first_run = _closure(["reimagine[local]"])
    assert {"pytest", "hypothesis", "mypy", "ruff", "playwright", "aws-sam-cli", "schemathesis"} & first_run == set()
    assert "aws-sam-cli" in {r.split(">")[0].split("[")[0].strip() for r in project["optional-dependencies"]["dev"]}
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: \$\(LOCAL_STAMP\)$", makefile, flags=re.MULTILINE)
    assert re.search(
        r"^\$\(LOCAL_STAMP\):.*\n(?:\t.*\n)*\t\$\(BIN\)/python -m pip install [^\n]*-e '\.\[local\]'\n",
        makefile,
        flags=re.MULTILINE,
    )


def test_sam_build_runs_the_makefile_in_the_repository_where_its_installs_persist() -> None:
    # In a scratch copy (SAM's default) the Makefile's installed distributions would be lost each build,
    # and the whole repository, virtualenv included, copied once per function.
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert {
        env: config[env]["build"]["parameters"].get("build_in_source") for env in ("default", "localstack", "prod")
    } == {
        "default": True,
        "localstack": True,
        "prod": True,
    }
