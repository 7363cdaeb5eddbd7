"""Daily limits on new requests: per email address, per source IP and for the whole stack.

Each limit is one atomic conditional counter per UTC day in RequestsTable:
- per address `quota#<hmac>#<yyyy-mm-dd>`: an HMAC-SHA256 of the canonical mailbox
  (`reimagine.addresses.canonical_mailbox`: case, `+tags` and Gmail's dots fold, so one inbox is one
  count) under a per-deployment secret key, so the table never holds the address and a counter cannot
  be matched to a guessed address without the key;
- per source IP `quota#ip#<hmac>#<yyyy-mm-dd>`, under the same key (never the raw IP); an IPv6
  address counts as its /64, the block one subscriber is usually given;
- for the stack `quota#all#<yyyy-mm-dd>`, which caps the provider calls and mail of a day.
Counters carry the table's TTL attribute and vanish after their day. They live beside the request
records because every environment (AWS, the local stack, the tests) already has that table; they
have no `status`, so the stream filters and the status index skip them.

New and repeat addresses take the same path and get the same answer until the limit is reached,
so the API does not tell whether an address has been used before.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from reimagine.addresses import canonical_mailbox
from reimagine.errors import ApiError
from reimagine.models import utcnow
from reimagine.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from reimagine.config import Settings

QUOTA_PREFIX = "quota#"
IP_PREFIX = f"{QUOTA_PREFIX}ip#"
BUDGET_PREFIX = f"{QUOTA_PREFIX}all#"


class QuotaExceeded(ApiError):
    """The address has used its requests for today; `retry_after` is seconds to the next UTC day.

    Answered 429 with its code, the limit and the wait in `details`, and the wait in Retry-After.
    """

    code = "QUOTA_EXCEEDED"
    # Who ran out, in the message: the one thing that differs between the three limits.
    _used_up = "this email address has used its {limit} requests for today"

    def __init__(self, limit: int, retry_after: int) -> None:
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(
            429,
            type(self).code,
            f"{self._used_up.format(limit=limit)}; {retry_advice(retry_after)}",
            {"limit": limit, "retry_after_seconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
        # Every limit counts in QuotaExceeded, and each in its own Refused<Code> (RefusedIpQuotaExceeded...).
        self.counted_as = ("QuotaExceeded", f"Refused{self.code.title().replace('_', '')}")


class IpQuotaExceeded(QuotaExceeded):
    """The source IP (its /64 for IPv6) has used its requests for today."""

    code = "IP_QUOTA_EXCEEDED"
    _used_up = "your network has used its {limit} requests for today"


class DailyBudgetExhausted(QuotaExceeded):
    """The whole stack has taken its new requests for today, whoever asks."""

    code = "DAILY_BUDGET_EXHAUSTED"
    _used_up = "the service has taken all the requests it can for today"


def retry_advice(retry_after: int) -> str:
    """When the limits reset, in words: "try again after 00:00 UTC, in 5 hours"."""
    minutes = max(1, -(-retry_after // 60))
    if minutes < 60:
        when = f"{minutes} minute{'s' if minutes > 1 else ''}"
    else:
        hours = round(minutes / 60)
        when = f"about {hours} hour{'s' if hours > 1 else ''}" if minutes % 60 else f"{hours} hours"
    return f"try again after 00:00 UTC, in {when}"


def email_digest(email: str, key: bytes) -> str:
    """One mailbox, one counter. The HMAC input is the bare canonical mailbox, as it was before Gmail's
    dots folded: counters already stored for any other address keep counting under the same key."""
    return hmac.new(key, canonical_mailbox(email).encode(), hashlib.sha256).hexdigest()


def counter_id(digest: str, day: date) -> str:
    return f"{QUOTA_PREFIX}{digest}#{day.isoformat()}"


def network_of(source_ip: str) -> str:
    """What one client is counted as: an IPv4 address, or the /64 of an IPv6 one (a subscriber's block)."""
    try:
        address = ipaddress.ip_address(source_ip.strip())
    except ValueError:
        return source_ip.strip()  # HttpApi always sends an address; anything else is still counted, as is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def ip_digest(source_ip: str, key: bytes) -> str:
    # Domain-separated from the address digests, so an IP and an address never share a counter.
    return hmac.new(key, f"ip:{network_of(source_ip)}".encode(), hashlib.sha256).hexdigest()


def ip_counter_id(digest: str, day: date) -> str:
    return f"{IP_PREFIX}{digest}#{day.isoformat()}"


def budget_counter_id(day: date) -> str:
    return f"{BUDGET_PREFIX}{day.isoformat()}"


def next_utc_midnight(now: datetime) -> datetime:
    return datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=now.tzinfo)


def seconds_until_next_day(now: datetime) -> int:
    return max(1, math.ceil((next_utc_midnight(now) - now).total_seconds()))


def hashing_key(settings: Settings) -> bytes:
    """The secret key that hashes addresses and IPs: an SSM SecureString when one is named, else the
    Secrets Manager secret the stack generated at deploy time; the fixed salt only where neither
    exists (tests and a bare local run)."""
    if settings.quota_key_parameter or settings.quota_key_secret:
        from aws_lambda_powertools.utilities import parameters

        if settings.quota_key_parameter:
            value = parameters.get_parameter(settings.quota_key_parameter, decrypt=True, max_age=300)
        else:
            value = parameters.get_secret(settings.quota_key_secret, max_age=300)
        return str(value).encode()
    return settings.quota_salt.encode()


class DailyQuota:
    """The daily limits of new requests; `per_ip` and `budget` left None are not counted."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        limit: int,
        key: bytes,
        per_ip: int | None = None,
        budget: int | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = client
        self._table = table_name
        self._limit = limit
        self._key = key
        self._per_ip = per_ip
        self._budget = budget
        self._clock = clock

    @classmethod
    def from_settings(cls, client: DynamoDBClient, settings: Settings) -> DailyQuota:
        return cls(
            client,
            settings.table_name,
            limit=settings.daily_quota_per_email,
            key=hashing_key(settings),
            per_ip=settings.daily_quota_per_ip,
            budget=settings.daily_request_budget,
        )

    def consume(self, email: str, source_ip: str | None = None) -> None:
        """Count one new request today against each limit, or raise (a QuotaExceeded) having counted none.

        The most specific limit is taken first: source IP, then address, then the stack's budget, so a
        client over its own quota is refused before it touches a shared one. Each take is one
        conditional write (concurrent requests cannot both take the last one); when a later one refuses,
        the earlier takes are given back. Between a take and its give-back another request may see one
        more used than will be: it errs towards refusing, never towards admitting over a limit.
        """
        now = self._clock()
        day = now.date()
        limits: list[tuple[str, int, type[QuotaExceeded]]] = []
        if source_ip is not None and self._per_ip is not None:
            limits.append((ip_counter_id(ip_digest(source_ip, self._key), day), self._per_ip, IpQuotaExceeded))
        limits.append((counter_id(email_digest(email, self._key), day), self._limit, QuotaExceeded))
        if self._budget is not None:
            limits.append((budget_counter_id(day), self._budget, DailyBudgetExhausted))
        taken: list[str] = []
        for counter, limit, refusal in limits:
            if not self._take(counter, limit, now):
                for earlier in reversed(taken):
                    self._give_back(earlier)
                raise refusal(limit, seconds_until_next_day(now))
            taken.append(counter)

    def _take(self, counter: str, limit: int, now: datetime) -> bool:
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"id": {"S": counter}},
                # Check and increment in one write: concurrent requests cannot both take the last one.
                UpdateExpression="ADD request_count :one SET expires_at = if_not_exists(expires_at, :expires)",
                ConditionExpression="attribute_not_exists(request_count) OR request_count < :limit",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(limit)},
                    # A day past its own day: DynamoDB deletes expired items within a day or two.
                    ":expires": {"N": str(int((next_utc_midnight(now) + timedelta(days=1)).timestamp()))},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _give_back(self, counter: str) -> None:
        # Best effort: if this write is lost, the day's count stays one high (stricter, never looser).
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"id": {"S": counter}},
                UpdateExpression="ADD request_count :minus_one",
                ConditionExpression="request_count > :zero",
                ExpressionAttributeValues={":minus_one": {"N": "-1"}, ":zero": {"N": "0"}},
            )
        except ClientError as exc:
            # The counter's id is a keyed hash: safe to name; the address or IP never is.
            logger.warning("could not give back a daily count", extra={"counter": counter, "error": str(exc)})
