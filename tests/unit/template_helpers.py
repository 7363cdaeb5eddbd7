"""Reading template.yaml in tests: short-form tags expanded (cfn-flip), resources, policies, environment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cfn_tools import load_yaml

from reimagine_local.template import Resolver, StackContext
from reimagine_local.translated import translate

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
# What the sample events were recorded against: stack `reimagine` in a test account.
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::StackName": "reimagine",
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
}


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return load_yaml(path.read_text())


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id].get("Properties", {})


def functions(template: dict[str, Any]) -> list[str]:
    return sorted(resources(template, "AWS::Serverless::Function"))


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def sub(value: Any) -> str:
    """Resolve a plain-string !Sub with the pseudo parameters of the sample stack."""
    assert isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str), value
    return re.sub(r"\$\{([^}]+)\}", lambda m: PSEUDO[m.group(1)], value["Fn::Sub"])


def branches(value: Any) -> list[Any]:
    """Every value an `Fn::If` may take (both branches, AWS::NoValue dropped); others as they are."""
    if isinstance(value, dict) and "Fn::If" in value:
        _, when_true, when_false = value["Fn::If"]
        return [v for branch in (when_true, when_false) for v in branches(branch)]
    if value == {"Ref": "AWS::NoValue"}:
        return []
    return [value]


def statements(template: dict[str, Any], function: str) -> list[dict[str, Any]]:
    """The statements of a function's inline policies, conditional ones included."""
    found: list[dict[str, Any]] = []
    for policy in props(template, function).get("Policies", []):
        assert isinstance(policy, dict) and "Statement" in policy, f"{function}: write policies as statements"
        for statement in policy["Statement"]:
            found.extend(branches(statement))
    return found


def function_env(template: dict[str, Any], function: str) -> dict[str, Any]:
    env = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    env.update(props(template, function).get("Environment", {}).get("Variables", {}))
    return env


def translated(template: dict[str, Any] | None = None, **parameters: str) -> dict[str, Any]:
    """The CloudFormation SAM makes of `template` (template.yaml by default) for the sample stack."""
    sam = load_template() if template is None else template
    context = StackContext(parameters=parameters)
    return translate(sam, region=context.region, parameters=Resolver(sam, context).parameters)
