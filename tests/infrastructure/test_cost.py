"""bench/cost.py: durations and the template's memory sizes turned into the AWS cost of 1,000 images."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

import pytest

from tests.fixtures.template import ROOT, load_template, props


def _load_cost() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_cost", ROOT / "bench" / "cost.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


cost = _load_cost()


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def usage(**overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "durations_ms": dict(cost.DEFAULT_DURATIONS_MS),
        "memory_mb": cost.template_memory_mb(),
    } | overrides
    return cost.Usage(**fields)


def test_memory_sizes_are_the_templates(template: dict[str, Any]) -> None:
    memory = cost.template_memory_mb(template)
    assert memory["GenerateFunction"] == props(template, "GenerateFunction")["MemorySize"]
    assert memory["NotifyFunction"] == template["Globals"]["Function"]["MemorySize"]


def test_a_picture_of_8_s_at_1_gb_costs_8_gb_seconds_at_the_arm_price() -> None:
    # Given GenerateFunction at 1024 MB taking 8,000 ms
    memory = cost.template_memory_mb() | {"GenerateFunction": 1024}
    # When 1,000 images are estimated
    lines = cost.lines(usage(memory_mb=memory, durations_ms=cost.DEFAULT_DURATIONS_MS | {"GenerateFunction": 8000.0}))
    # Then that line is 1,000 x 8 GB-s x $0.0000133334
    assert dict(lines)["Lambda GenerateFunction duration"] == pytest.approx(1000 * 8 * 0.0000133334)


def test_polling_clients_cost_api_invocations_and_reads() -> None:
    quiet, busy = cost.estimate(usage(polls=0)), cost.estimate(usage(polls=10))
    extra_reads = busy["lines"]["DynamoDB reads"] - quiet["lines"]["DynamoDB reads"]
    assert extra_reads == pytest.approx(1000 * 10 * 0.125 / 1e6)


def test_storage_follows_the_retention_days() -> None:
    month, day = cost.estimate(usage(result_retention_days=30)), cost.estimate(usage(result_retention_days=1))
    assert month["lines"]["S3 storage"] > 10 * day["lines"]["S3 storage"]


def test_provider_fees_are_reported_apart_from_the_aws_total() -> None:
    # Given a provider charging per call
    free, charged = cost.estimate(usage()), cost.estimate(usage(caption_fee=0.001, picture_fee=0.003))
    # Then the AWS total is unchanged and the fees are 1,000 x (caption + picture)
    assert (charged["aws_usd"], charged["provider_usd"]) == (free["aws_usd"], pytest.approx(4.0))


def test_every_price_names_its_source_page() -> None:
    assert all(price.source.startswith("https://aws.amazon.com/") for price in cost.PRICES.values())


def test_a_duration_for_an_unknown_function_is_refused() -> None:
    with pytest.raises(SystemExit, match="Function=ms"):
        cost.parse_durations(["ResizeFunction=100"], {"GenerateFunction"})


def test_the_report_prints_and_exits_0_with_every_function_of_the_template(capsys: pytest.CaptureFixture[str]) -> None:
    # Given the template, which has functions no image passes through (MailEventsFunction)
    # When the report is printed with the assumed durations
    status = cost.main([])
    # Then it ends normally, having printed its totals
    assert (status, "total (AWS)" in capsys.readouterr().out) == (0, True)


def test_every_function_of_the_template_is_costed_per_image_or_said_not_to_be(template: dict[str, Any]) -> None:
    # Given the functions the template deploys
    deployed = set(cost.template_memory_mb(template))
    # Then each is either in the per-image estimate or named, with why, as outside it
    assert deployed == set(cost.DEFAULT_DURATIONS_MS) | set(cost.NOT_PER_IMAGE)
