"""The AWS fault lane's injector: faulted calls fail as AWS fails them, and botocore retries them so."""

from __future__ import annotations

from types import SimpleNamespace

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from reimagine import clients, faults
from reimagine.config import settings
from reimagine.faults import FAULTS, FaultInjector

ONE_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 2})


def _calls(cfg) -> dict:
    """One call per service the functions use, each a real request moto would answer."""
    return {
        "dynamodb": lambda c: c.get_item(TableName=cfg.table_name, Key={"id": {"S": "x"}}),
        "s3": lambda c: c.head_bucket(Bucket=cfg.uploads_bucket),
        "ses": lambda c: c.send_email(
            Source=cfg.sender_email,
            Destination={"ToAddresses": ["jane@example.com"]},
            Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}},
        ),
    }


@pytest.mark.parametrize("service", ["dynamodb", "s3", "ses"])
def test_a_faulted_call_fails_with_that_services_own_throttle_or_5xx_and_botocore_retries_it(aws, service):
    # Given a client of the service with every call faulted
    client = boto3.client(service, config=ONE_RETRY)
    injector = FaultInjector(1.0, seed=3)
    client.meta.events.register_first("before-send", injector)
    # When the functions' kind of call is made
    with pytest.raises(ClientError) as raised:
        _calls(aws)[service](client)
    # Then it fails with one of the errors that service really returns, after botocore's retry
    error = raised.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) in {
        (f.status, f.code) for f in FAULTS[service]
    }
    assert error["ResponseMetadata"]["RetryAttempts"] == 1
    assert sum(injector.injected.values()) == 2 and injector.calls[service] == 2


def test_faults_off_leave_clients_alone(aws):
    client = faults.attach(boto3.client("s3"), 0.0, None)
    assert client.head_bucket(Bucket=aws.uploads_bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_share_of_calls_fail_and_the_rest_go_through():
    injector = FaultInjector(0.3, seed=11)
    request = SimpleNamespace(url="https://dynamodb.us-east-1.amazonaws.com/")
    answered = [injector(request, event_name="before-send.dynamodb.UpdateItem") for _ in range(2000)]
    failed = sum(1 for a in answered if a is not None)
    assert 500 <= failed <= 700  # 30 % of 2000, give or take what a seeded draw gives
    assert injector.calls["dynamodb"] == 2000 and sum(injector.injected.values()) == failed


def test_services_the_lane_does_not_cover_are_never_faulted():
    injector = FaultInjector(1.0)
    request = SimpleNamespace(url="https://ssm.us-east-1.amazonaws.com/")
    assert injector(request, event_name="before-send.ssm.GetParameter") is None


def test_the_functions_clients_take_the_rate_from_their_environment(aws, monkeypatch):
    # Given the functions' Environment asks for every AWS call to fail
    monkeypatch.setenv("INJECTED_AWS_FAULT_RATE", "1")
    settings.cache_clear()
    clients.ses.cache_clear()
    try:
        # When Notify's SES client sends, Then SES's throttle or 5xx comes back
        with pytest.raises(ClientError) as raised:
            _calls(aws)["ses"](clients.ses())
        assert raised.value.response["Error"]["Code"] in {f.code for f in FAULTS["ses"]}
    finally:
        monkeypatch.delenv("INJECTED_AWS_FAULT_RATE")
        settings.cache_clear()
        clients.ses.cache_clear()
