"""The AWS fault lane: with a share of the functions' DynamoDB, S3 and SES calls failing, every request
still ends final with exactly one email. Opt in with `--aws-faults` (or REIMAGINE_AWS_FAULTS=1): it
runs the stack for a few minutes, sweeping and re-driving as an operator would (bench/aws_faults.py)."""

from __future__ import annotations

import pytest

from bench.aws_faults import run, verdict

pytestmark = [pytest.mark.integration, pytest.mark.aws_faults, pytest.mark.timeout(900)]


def test_every_request_ends_final_with_one_email_while_a_third_of_aws_calls_fail():
    # Given 30 % of the functions' AWS calls answered with a throttle or a 5xx
    summary = run(12, rate=0.3, seed=7, concurrency=4, sweep_every=20.0, timeout=600.0)
    # Then faults were injected on every service the functions use
    assert {key.split()[0] for key in summary["faults_injected"]} == {"dynamodb", "s3", "ses"}
    # And every request is final, with one email each and a result for each completed one
    assert verdict(summary) == []
    assert summary["emails"] == summary["created"] == 12
