"""Stack-wide limits: the daily request budget, the per-source-IP quota, and the secret key they hash under.

The per-address quota itself is specified in test_quota.py; here are the limits beside it, the order
they are taken in (a refusal spends no other limit) and where the hashing key comes from.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError

from reimagine.config import Settings, settings
from reimagine.handlers import api
from reimagine.quota import (
    BUDGET_PREFIX,
    IP_PREFIX,
    DailyBudgetExhausted,
    DailyQuota,
    IpQuotaExceeded,
    QuotaExceeded,
    budget_counter_id,
    counter_id,
    email_digest,
    hashing_key,
    ip_counter_id,
    ip_digest,
    network_of,
)
from reimagine_emulator.api_events import build_event
from reimagine_tools.template import HttpRoute
from tests.fixtures.lambda_context import lambda_context

KEY = b"per-deployment-key"
T0 = datetime(2026, 11, 23, 23, 59, 30, tzinfo=UTC)  # 30 s before the next UTC day
CREATE = HttpRoute("POST", "/requests")


def _quota(*, limit: int = 20, per_ip: int | None = None, budget: int | None = None) -> DailyQuota:
    table = settings().table_name
    return DailyQuota(
        boto3.client("dynamodb"), table, limit=limit, key=KEY, per_ip=per_ip, budget=budget, clock=lambda: T0
    )


def _count(counter: str) -> int:
    item = boto3.client("dynamodb").get_item(TableName=settings().table_name, Key={"id": {"S": counter}}).get("Item")
    return int(item["request_count"]["N"]) if item else 0


def _post(email: str, source_ip: str) -> tuple[int, dict, dict]:
    body = json.dumps({"email": email, "content_type": "image/png"}).encode()
    event = build_event(
        route=CREATE,
        path_parameters={},
        method="POST",
        raw_path="/requests",
        headers={"content-type": "application/json"},
        body=body,
        source_ip=source_ip,
    )
    response = api.handler(event, lambda_context("ApiFunction", 15, 256))
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return response["statusCode"], headers, json.loads(response["body"])


# ---------------------------------------------------------------- the stack's daily budget


def test_the_budget_caps_new_requests_from_every_address_together(aws) -> None:
    # Given a budget of 3 for the whole stack
    quota = _quota(budget=3)
    for n in range(3):
        quota.consume(f"user{n}@example.com")
    # When a fourth, new address asks
    with pytest.raises(DailyBudgetExhausted) as refused:
        quota.consume("someone.else@example.com")
    # Then it is refused until the next UTC day, and the budget counter stays at its limit
    assert (refused.value.code, refused.value.limit, refused.value.retry_after) == ("DAILY_BUDGET_EXHAUSTED", 3, 30)
    assert _count(budget_counter_id(T0.date())) == 3


def test_the_api_answers_429_daily_budget_exhausted_with_retry_after(aws, monkeypatch) -> None:
    # Given a stack whose budget of 2 is spent by two different clients
    monkeypatch.setattr(settings(), "daily_request_budget", 2)
    assert _post("jane.doe@example.com", "203.0.113.1")[0] == 201
    assert _post("john.doe@example.com", "203.0.113.2")[0] == 201
    # When a third client asks
    status, headers, body = _post("new.person@example.com", "198.51.100.3")
    # Then 429 with the budget's own code, its limit, and Retry-After to the next UTC midnight
    assert status == 429
    assert body["error"]["code"] == "DAILY_BUDGET_EXHAUSTED"
    assert body["error"]["details"]["limit"] == 2
    now = datetime.now(UTC)
    assert int(headers["retry-after"]) == pytest.approx(
        (datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC).timestamp() + 86400) - now.timestamp(), abs=5
    )


# ---------------------------------------------------------------- per source IP


def test_one_source_ip_is_capped_whatever_addresses_it_uses(aws, monkeypatch) -> None:
    # Given a per-IP quota of 2 (catch-all domains make addresses free)
    monkeypatch.setattr(settings(), "daily_quota_per_ip", 2)
    assert _post("a1@catch-all.example", "203.0.113.7")[0] == 201
    assert _post("a2@catch-all.example", "203.0.113.7")[0] == 201
    # When the same IP tries a third address
    status, headers, body = _post("a3@catch-all.example", "203.0.113.7")
    # Then it is refused with the IP quota's own code; another IP is unaffected
    assert (status, body["error"]["code"]) == (429, "IP_QUOTA_EXCEEDED")
    assert body["error"]["details"]["retry_after_seconds"] == int(headers["retry-after"])
    assert _post("a3@catch-all.example", "198.51.100.9")[0] == 201


@pytest.mark.parametrize(
    ("source_ip", "counted_as"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_an_ipv6_client_is_counted_by_its_64(source_ip: str, counted_as: str) -> None:
    # A subscriber holds a whole /64: counting single IPv6 addresses would not bound anyone.
    assert network_of(source_ip) == counted_as


def test_addresses_in_one_ipv6_64_share_a_counter(aws) -> None:
    quota = _quota(per_ip=1)
    quota.consume("jane.doe@example.com", "2001:db8:1:2::1")
    with pytest.raises(IpQuotaExceeded):
        quota.consume("john.doe@example.com", "2001:db8:1:2::ffff")


def test_an_ip_counter_is_a_keyed_hash_never_the_ip(aws) -> None:
    # Given one request from an IP
    _quota(per_ip=5).consume("jane.doe@example.com", "203.0.113.77")
    # Then its counter is keyed by an HMAC under the deployment key, and nothing stored shows the IP
    digest = ip_digest("203.0.113.77", KEY)
    assert digest != ip_digest("203.0.113.77", b"another deployment")
    assert _count(ip_counter_id(digest, T0.date())) == 1
    items = boto3.client("dynamodb").scan(TableName=settings().table_name)["Items"]
    assert [i["id"]["S"] for i in items if i["id"]["S"].startswith(IP_PREFIX)] == [ip_counter_id(digest, T0.date())]
    assert "203.0.113.77" not in json.dumps(items)


# ---------------------------------------------------------------- order: a refusal spends nothing else


def test_a_client_over_its_ip_quota_never_touches_the_address_or_the_budget(aws) -> None:
    # Given an IP that has used its one request
    quota = _quota(per_ip=1, budget=100)
    quota.consume("jane.doe@example.com", "203.0.113.7")
    # When it keeps asking with fresh addresses
    for n in range(5):
        with pytest.raises(IpQuotaExceeded):
            quota.consume(f"fresh{n}@example.com", "203.0.113.7")
    # Then the stack's budget counted only the one request it let through, and no new address was counted
    assert _count(budget_counter_id(T0.date())) == 1
    assert _count(counter_id(email_digest("fresh0@example.com", KEY), T0.date())) == 0


def test_an_address_over_its_quota_gives_back_the_ip_it_took(aws) -> None:
    # Given an address that has used its one request, from some IP
    quota = _quota(limit=1, per_ip=10, budget=100)
    quota.consume("jane.doe@example.com", "203.0.113.7")
    # When it asks again from another IP
    with pytest.raises(QuotaExceeded) as refused:
        quota.consume("jane.doe@example.com", "198.51.100.9")
    # Then the refusal is the address's, and that IP and the budget are as they were
    assert refused.value.code == "QUOTA_EXCEEDED"
    assert _count(ip_counter_id(ip_digest("198.51.100.9", KEY), T0.date())) == 0
    assert _count(budget_counter_id(T0.date())) == 1


def test_a_spent_budget_gives_back_the_ip_and_address_it_took(aws) -> None:
    quota = _quota(limit=5, per_ip=5, budget=1)
    quota.consume("jane.doe@example.com", "203.0.113.7")
    with pytest.raises(DailyBudgetExhausted):
        quota.consume("john.doe@example.com", "198.51.100.9")
    assert _count(ip_counter_id(ip_digest("198.51.100.9", KEY), T0.date())) == 0
    assert _count(counter_id(email_digest("john.doe@example.com", KEY), T0.date())) == 0


def test_counters_of_the_three_limits_never_collide(aws) -> None:
    day = T0.date()
    ids = {
        counter_id(email_digest("jane.doe@example.com", KEY), day),
        ip_counter_id(ip_digest("203.0.113.7", KEY), day),
        budget_counter_id(day),
    }
    assert len(ids) == 3
    assert budget_counter_id(day) == f"{BUDGET_PREFIX}2026-11-23"


# ---------------------------------------------------------------- the key


def test_the_generated_secret_is_the_key_when_no_ssm_key_is_named(aws) -> None:
    # Given the secret the stack generated at deploy time
    boto3.client("secretsmanager").create_secret(Name="reimagine-test/generated-key", SecretString="g3n3r4t3d")
    configured = Settings(quota_salt="not-secret", quota_key_secret="reimagine-test/generated-key")
    # Then its value is the key, not the salt
    assert hashing_key(configured) == b"g3n3r4t3d"


def test_a_named_ssm_key_wins_over_the_generated_secret(aws) -> None:
    boto3.client("ssm").put_parameter(Name="/reimagine/test/named-key", Value="n4m3d", Type="SecureString")
    boto3.client("secretsmanager").create_secret(Name="reimagine-test/unused-key", SecretString="unused")
    configured = Settings(quota_key_parameter="/reimagine/test/named-key", quota_key_secret="reimagine-test/unused-key")
    assert hashing_key(configured) == b"n4m3d"


def test_the_api_hashes_under_the_generated_secret(aws, monkeypatch) -> None:
    # Given the API configured with the generated secret
    boto3.client("secretsmanager").create_secret(Name="reimagine-test/api-key", SecretString="4p1-k3y")
    monkeypatch.setattr(settings(), "quota_key_secret", "reimagine-test/api-key")
    # When a request is made
    assert _post("jane.doe@example.com", "203.0.113.7")[0] == 201
    # Then its address counter is keyed by that secret (and not by the fixed development salt)
    today = datetime.now(UTC).date()
    assert _count(counter_id(email_digest("jane.doe@example.com", b"4p1-k3y"), today)) == 1
    assert _count(counter_id(email_digest("jane.doe@example.com", settings().quota_salt.encode()), today)) == 0


class _GiveBackFails:
    """A DynamoDB client whose give-backs (ADD -1) are throttled: everything else is the real moto client."""

    def __init__(self, real) -> None:
        self._real = real

    def update_item(self, **kwargs):
        if ":minus_one" in kwargs.get("ExpressionAttributeValues", {}):
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")
        return self._real.update_item(**kwargs)


def test_a_lost_give_back_still_refuses_cleanly_and_errs_strict(aws) -> None:
    # Given an address over its quota, and give-backs that fail
    real = boto3.client("dynamodb")
    quota = DailyQuota(
        _GiveBackFails(real), settings().table_name, limit=1, key=KEY, per_ip=10, budget=100, clock=lambda: T0
    )
    quota.consume("jane.doe@example.com", "203.0.113.7")
    # When it asks again from another IP
    with pytest.raises(QuotaExceeded) as refused:
        quota.consume("jane.doe@example.com", "198.51.100.9")
    # Then the client still gets the address's refusal (not an error), and that IP's count stays one
    # high: stricter than it should be, never looser
    assert refused.value.code == "QUOTA_EXCEEDED"
    assert _count(ip_counter_id(ip_digest("198.51.100.9", KEY), T0.date())) == 1
