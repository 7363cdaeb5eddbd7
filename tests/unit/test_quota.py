"""Per-email daily quota: atomic counting, 429 with Retry-After, no address stored, nothing revealed."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reimagine.config import Settings, settings
from reimagine.handlers import api
from reimagine.handlers.streams import process_stream
from reimagine.quota import (
    QUOTA_PREFIX,
    DailyQuota,
    QuotaExceeded,
    counter_id,
    email_digest,
    hashing_key,
    next_utc_midnight,
    seconds_until_next_day,
)
from reimagine.steps.claims import StepOutcome
from reimagine_emulator.api_events import build_event
from reimagine_tools.template import HttpRoute
from tests.fixtures.events import load_event
from tests.fixtures.lambda_context import lambda_context

KEY = b"per-deployment-key"
T0 = datetime(2026, 11, 23, 23, 59, 30, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _quota(aws, clock: Clock, limit: int = 3) -> DailyQuota:
    return DailyQuota(boto3.client("dynamodb"), aws.table_name, limit=limit, key=KEY, clock=clock)


def _items(aws) -> list[dict]:
    return boto3.client("dynamodb").scan(TableName=aws.table_name)["Items"]


def _call(method: str, path: str, body: dict | None = None) -> dict:
    raw = json.dumps(body).encode() if body is not None else None
    event = build_event(
        route=HttpRoute(method, path),
        path_parameters={},
        method=method,
        raw_path=path,
        headers={"content-type": "application/json"} if raw else {},
        body=raw,
        source_ip="203.0.113.10",
    )
    return api.handler(event, lambda_context("ApiFunction", 15, 256))


def _post(email: str) -> tuple[int, dict, dict]:
    response = _call("POST", "/requests", {"email": email, "content_type": "image/png"})
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return response["statusCode"], headers, json.loads(response["body"])


# ---------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("variant", "mailbox"),
    [
        ("Jane.Doe@Example.com", "jane.doe@example.com"),
        (" jane.doe@example.com ", "jane.doe@example.com"),
        ("jane.doe+photos@example.com", "jane.doe@example.com"),
        ("JANE.DOE+x@EXAMPLE.COM", "jane.doe@example.com"),
        ("v.ictimx@gmail.com", "victimx@gmail.com"),
        ("vi.ctimx@gmail.com", "victimx@gmail.com"),
        ("vict.imx+1@googlemail.com", "victimx@gmail.com"),
    ],
)
def test_one_mailbox_is_one_counter(variant: str, mailbox: str) -> None:
    # The counter is keyed on the canonical mailbox (reimagine.addresses), whatever variant is typed
    assert email_digest(variant, KEY) == email_digest(mailbox, KEY)


def test_a_stored_counter_keeps_counting_where_the_mailbox_is_unchanged() -> None:
    # Counters already in the table were keyed on the lower-cased address without its +tag: for every
    # address but a Gmail one with dots (or at googlemail.com) the key is the same as before.
    before = hmac.new(KEY, b"jane.doe@example.com", hashlib.sha256).hexdigest()
    assert email_digest("Jane.Doe+x@example.com", KEY) == before


def test_the_counter_id_is_a_keyed_hash_never_the_address() -> None:
    digest = email_digest("jane.doe@example.com", KEY)
    assert len(digest) == 64 and "jane" not in digest
    assert digest != email_digest("jane.doe@example.com", b"another deployment")
    assert digest != email_digest("john.doe@example.com", KEY)
    assert counter_id(digest, T0.date()) == f"quota#{digest}#2026-11-23"


def test_the_key_is_the_salt_unless_an_ssm_key_is_named(aws) -> None:
    assert hashing_key(Settings(quota_salt="stack-id")) == b"stack-id"
    boto3.client("ssm").put_parameter(Name="/reimagine/test/quota-key", Value="s3cr3t", Type="SecureString")
    named = Settings(quota_salt="stack-id", quota_key_parameter="/reimagine/test/quota-key")
    assert hashing_key(named) == b"s3cr3t"


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_retry_after_reaches_exactly_the_next_utc_day(now: datetime) -> None:
    seconds = seconds_until_next_day(now)
    assert 1 <= seconds <= 24 * 3600
    assert (now + timedelta(seconds=seconds)).date() > now.date()
    assert (now + timedelta(seconds=seconds - 1)).date() == now.date() or seconds == 1


# ---------------------------------------------------------------- counting


def test_the_limit_is_enforced_and_the_refusal_is_not_counted(aws) -> None:
    clock = Clock(T0)
    quota = _quota(aws, clock, limit=3)
    for _ in range(3):
        quota.consume("jane.doe@example.com")
    for _ in range(2):
        with pytest.raises(QuotaExceeded) as refused:
            quota.consume("Jane.Doe+again@example.com")
        assert refused.value.limit == 3
        assert refused.value.retry_after == 30  # 23:59:30 -> midnight
    (item,) = _items(aws)
    assert item["request_count"] == {"N": "3"}
    assert item["id"]["S"].startswith(QUOTA_PREFIX)
    # The counter expires (TTL) a day after its own day ends.
    assert int(item["expires_at"]["N"]) == int((next_utc_midnight(T0) + timedelta(days=1)).timestamp())


def test_addresses_are_counted_apart(aws) -> None:
    quota = _quota(aws, Clock(T0), limit=1)
    quota.consume("jane.doe@example.com")
    quota.consume("john.doe@example.com")
    with pytest.raises(QuotaExceeded):
        quota.consume("jane.doe@example.com")


def test_a_new_utc_day_starts_a_new_count(aws) -> None:
    clock = Clock(T0)
    quota = _quota(aws, clock, limit=1)
    quota.consume("jane.doe@example.com")
    with pytest.raises(QuotaExceeded):
        quota.consume("jane.doe@example.com")
    clock.now = T0 + timedelta(seconds=30)  # midnight
    quota.consume("jane.doe@example.com")
    assert len(_items(aws)) == 2


def test_other_dynamodb_errors_are_not_mistaken_for_the_quota(aws) -> None:
    quota = DailyQuota(boto3.client("dynamodb"), "no-such-table", limit=1, key=KEY, clock=Clock(T0))
    with pytest.raises(Exception) as raised:
        quota.consume("jane.doe@example.com")
    assert not isinstance(raised.value, QuotaExceeded)


def test_stream_consumers_skip_counter_records(aws) -> None:
    # A counter's stream record has no request id: the step never runs for it.
    seen: list[str] = []

    def step(request_id: str) -> StepOutcome:
        seen.append(request_id)
        return StepOutcome(request_id, "done")

    record = load_event("dynamodb_stream_completed.json")["Records"][0]
    record["dynamodb"]["Keys"] = {"id": {"S": counter_id("ab" * 32, T0.date())}}
    record["dynamodb"]["NewImage"] = {"id": record["dynamodb"]["Keys"]["id"], "request_count": {"N": "1"}}
    result = process_stream(
        {"Records": [record]}, lambda_context("ApiFunction", 15, 256), step_name="notify", step=step
    )
    assert result == {"batchItemFailures": []}
    assert seen == []


# ---------------------------------------------------------------- through the API


def test_the_api_answers_429_with_retry_after_once_the_day_is_used(aws) -> None:
    limit = settings().daily_quota_per_email
    for _ in range(limit):
        status, _, _ = _post("jane.doe@example.com")
        assert status == 201
    status, headers, body = _post("jane.doe+more@example.com")
    assert status == 429
    assert body["error"]["code"] == "QUOTA_EXCEEDED"
    assert body["error"]["details"]["limit"] == limit
    retry_after = int(headers["retry-after"])
    assert 1 <= retry_after <= 24 * 3600
    assert body["error"]["details"]["retry_after_seconds"] == retry_after
    assert headers["cache-control"] == "no-store"
    # Another address is unaffected.
    assert _post("john.doe@example.com")[0] == 201


def test_dotted_variants_of_a_gmail_inbox_share_its_daily_quota_through_the_api(aws) -> None:
    # Given one Gmail inbox that has had its day's requests under one spelling
    limit = settings().daily_quota_per_email
    for _ in range(limit):
        assert _post("v.ictimx@gmail.com")[0] == 201
    # When another spelling of it asks (dots moved, googlemail.com, a tag)
    status, _, body = _post("vi.ctimx+again@googlemail.com")
    # Then it is the same mailbox, over the same quota
    assert (status, body["error"]["code"]) == (429, "QUOTA_EXCEEDED")


def test_the_api_does_not_tell_new_addresses_from_used_ones(aws) -> None:
    _, first_headers, first = _post("jane.doe@example.com")
    _, again_headers, again = _post("jane.doe@example.com")
    _, new_headers, new = _post("someone.new@example.com")

    def shape(value: object) -> object:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items() if k != "fields"}
        return type(value).__name__

    assert shape(first) == shape(again) == shape(new)
    assert set(first_headers) == set(again_headers) == set(new_headers)
    assert first["status"] == again["status"] == new["status"] == "PENDING_UPLOAD"


def test_no_counter_holds_the_address(aws) -> None:
    _post("jane.doe@example.com")
    counters = [i for i in _items(aws) if i["id"]["S"].startswith(QUOTA_PREFIX)]
    # One per limit: the address, the source IP and the stack's budget.
    assert len(counters) == 3
    assert "jane" not in json.dumps(counters).lower()


def test_the_openapi_document_declares_the_429(aws) -> None:
    document = json.loads(_call("GET", "/openapi.json")["body"])
    assert "429" in document["paths"]["/requests"]["post"]["responses"]
