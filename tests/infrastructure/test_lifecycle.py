"""The template's triggers agree with the state machine (reimagine.lifecycle): every reader of the
table's stream is a trigger the state machine names, and its filter lets through exactly the statuses
named there.

The check returns its findings, so it runs on the real template (which must have none) and on
deliberately drifted copies of either side (which must each be caught).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reimagine.lifecycle import TRIGGERS, Status, Trigger
from tests.fixtures.template import load_template, props, resources

Template = dict[str, Any]
TABLE_STREAM = {"Fn::GetAtt": ["RequestsTable", "StreamArn"]}


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template()


def _stream_readers(template: Template) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """(resource, its FilterCriteria or None) for everything that reads the requests table's stream."""
    for name in resources(template, "AWS::Pipes::Pipe"):
        pipe = props(template, name)
        if pipe.get("Source") == TABLE_STREAM:
            yield name, pipe.get("SourceParameters", {}).get("FilterCriteria")
    for name in resources(template, "AWS::Serverless::Function"):
        for event in props(template, name).get("Events", {}).values():
            if event["Type"] == "DynamoDB" and event["Properties"].get("Stream") == TABLE_STREAM:
                yield name, event["Properties"].get("FilterCriteria")
    for name in resources(template, "AWS::Lambda::EventSourceMapping"):
        mapping = props(template, name)
        if mapping.get("EventSourceArn") == TABLE_STREAM:
            yield name, mapping.get("FilterCriteria")


def _statuses_let_through(criteria: dict[str, Any] | None) -> set[str] | None:
    """The new-image statuses a stream filter lets through; None when some record passes whatever its status."""
    if not criteria:
        return None
    passed: set[str] = set()
    for entry in criteria["Filters"]:
        status = json.loads(entry["Pattern"]).get("dynamodb", {}).get("NewImage", {}).get("status")
        if not status:
            return None
        passed.update(status["S"])
    return passed


def lifecycle_findings(template: Template, triggers: tuple[Trigger, ...] = TRIGGERS) -> list[str]:
    expected = {t.resource: {s.value for s in t.statuses} for t in triggers if t.stream_filter}
    readers = {name: _statuses_let_through(criteria) for name, criteria in _stream_readers(template)}
    findings = [
        f"{t.resource}: a trigger the template lacks" for t in triggers if t.resource not in template["Resources"]
    ]
    for name in sorted(readers.keys() - expected.keys()):
        findings.append(f"{name} reads the table's stream, but the state machine names no trigger for it")
    for name in sorted(expected.keys() - readers.keys()):
        findings.append(
            f"{name}: the state machine says it filters the table's stream; the template has no such reader"
        )
    for name in sorted(readers.keys() & expected.keys()):
        if readers[name] != expected[name]:
            passed = sorted(readers[name]) if readers[name] is not None else "every status"
            findings.append(f"{name} lets {passed} through; the state machine says {sorted(expected[name])}")
    return findings


def test_the_template_triggers_agree_with_the_state_machine(template: Template) -> None:
    assert lifecycle_findings(template) == []


def test_every_stream_reader_filters_on_status(template: Template) -> None:
    # Guards the reader as much as the template: the stream readers found are the two the pipeline has
    assert sorted(name for name, _ in _stream_readers(template)) == ["GeneratePipe", "NotifyFunction"]


# ---------------------------------------------------------------- drift on either side must be caught


def _notify_filter(template: Template) -> dict[str, Any]:
    return props(template, "NotifyFunction")["Events"]["Finished"]["Properties"]["FilterCriteria"]


def _set_status(criteria: dict[str, Any], statuses: list[str]) -> None:
    pattern = json.loads(criteria["Filters"][0]["Pattern"])
    pattern["dynamodb"]["NewImage"]["status"]["S"] = statuses
    criteria["Filters"][0]["Pattern"] = json.dumps(pattern)


def _add_stream_reader(template: Template) -> None:
    props(template, "SweeperFunction")["Events"]["Stream"] = {
        "Type": "DynamoDB",
        "Properties": {"Stream": copy.deepcopy(TABLE_STREAM), "StartingPosition": "LATEST"},
    }


TEMPLATE_DRIFTS: dict[str, Callable[[Template], None]] = {
    "the pipe sends GENERATING": lambda t: _set_status(
        props(t, "GeneratePipe")["SourceParameters"]["FilterCriteria"], ["GENERATING"]
    ),
    "notify forgets FAILED": lambda t: _set_status(_notify_filter(t), ["COMPLETED"]),
    "notify hears DELETED too": lambda t: _set_status(_notify_filter(t), ["COMPLETED", "FAILED", "DELETED"]),
    "notify's filter removed": lambda t: props(t, "NotifyFunction")["Events"]["Finished"]["Properties"].pop(
        "FilterCriteria"
    ),
    "notify's status condition removed": lambda t: _notify_filter(t)["Filters"].__setitem__(
        0, {"Pattern": json.dumps({"dynamodb": {"NewImage": {"notified_at": {"S": [{"exists": False}]}}}})}
    ),
    "a new stream reader": _add_stream_reader,
    "the pipe removed": lambda t: t["Resources"].pop("GeneratePipe"),
}


@pytest.mark.parametrize("drift", TEMPLATE_DRIFTS, ids=list(TEMPLATE_DRIFTS))
def test_the_check_catches_a_template_that_drifted(template: Template, drift: str) -> None:
    # Given a copy of the template changed so that it no longer agrees with the state machine
    drifted = copy.deepcopy(template)
    TEMPLATE_DRIFTS[drift](drifted)
    # When it is checked, Then the disagreement is found
    assert lifecycle_findings(drifted)


def _with(resource: str, **changes: Any) -> tuple[Trigger, ...]:
    return tuple(dataclasses.replace(t, **changes) if t.resource == resource else t for t in TRIGGERS)


CODE_DRIFTS: dict[str, tuple[Trigger, ...]] = {
    "generate waits for GENERATING": _with("GeneratePipe", statuses=(Status.GENERATING,)),
    "notify waits for COMPLETED only": _with("NotifyFunction", statuses=(Status.COMPLETED,)),
    "the pipe no longer a stream trigger": _with("GeneratePipe", stream_filter=False),
    "the sweeper said to read the stream": _with("SweeperFunction", stream_filter=True),
    "a trigger the template lacks": (*TRIGGERS, Trigger("ResumeFunction", (Status.PENDING_UPLOAD,), False, "")),
}


@pytest.mark.parametrize("drift", CODE_DRIFTS, ids=list(CODE_DRIFTS))
def test_the_check_catches_a_state_machine_that_drifted(template: Template, drift: str) -> None:
    # Given the real template, When it is checked against a state machine changed on its side, Then it is found
    assert lifecycle_findings(template, CODE_DRIFTS[drift])
