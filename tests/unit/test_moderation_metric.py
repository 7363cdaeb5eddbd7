"""Every block is counted: the ContentBlocked metric, one per block, with its stage as a dimension
(CloudWatch embedded metric format on stdout, as Powertools writes it on Lambda)."""

from __future__ import annotations

import json

import pytest

from reimagine.errors import ContentBlocked
from reimagine.moderation import count_block


@pytest.mark.parametrize("stage", ["upload", "caption", "picture"])
def test_a_block_emits_one_content_blocked_metric_with_its_stage(
    stage: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given metrics enabled, as on Lambda
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    # When a block is counted
    count_block(ContentBlocked(stage, by="fake", reasons=("sexual",)))
    # Then one EMF record names ContentBlocked with that stage, and nothing of the content
    (emf,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert (
        "stage" in directive["Dimensions"][0],
        [m["Name"] for m in directive["Metrics"]],
        emf["stage"],
        emf["ContentBlocked"],
    ) == (
        True,
        ["ContentBlocked"],
        stage,
        [1.0],
    )
