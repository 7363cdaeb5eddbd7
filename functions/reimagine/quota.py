"""Per-email daily quota: one atomic conditional counter per address and UTC day, in RequestsTable.

The counter's key is `quota#<hmac>#<yyyy-mm-dd>`: an HMAC-SHA256 of the normalised address under a
per-deployment key, so the table never holds the address and a counter cannot be matched to a guessed
address without the key. Counters carry the table's TTL attribute and vanish after their day.
They live beside the request records because every environment (AWS, the local stack, the tests)
already has that table; they have no `status`, so the stream filters and the status index skip them.

New and repeat addresses take the same path (one UpdateItem) and get the same answer until the
limit is reached, so the API does not tell whether an address has been used before.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from reimagine.models import utcnow

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from reimagine.config import Settings

QUOTA_PREFIX = "quota#"


class QuotaExceeded(Exception):
    """The address has used its requests for today; `retry_after` is seconds to the next UTC day."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"over the daily quota of {limit}")
        self.limit = limit
        self.retry_after = retry_after


def normalise_email(email: str) -> str:
    """One mailbox, one counter: case and `+tag` sub-addresses do not make a new address."""
    local, _, domain = email.strip().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}".lower()


def email_digest(email: str, key: bytes) -> str:
    return hmac.new(key, normalise_email(email).encode(), hashlib.sha256).hexdigest()


def counter_id(digest: str, day: date) -> str:
    return f"{QUOTA_PREFIX}{digest}#{day.isoformat()}"


def next_utc_midnight(now: datetime) -> datetime:
    return datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=now.tzinfo)


def seconds_until_next_day(now: datetime) -> int:
    return max(1, math.ceil((next_utc_midnight(now) - now).total_seconds()))


def hashing_key(settings: Settings) -> bytes:
    """The secret key from SSM when one is named, else the deployment's salt (its stack id on AWS)."""
    if settings.quota_key_parameter:
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_parameter(settings.quota_key_parameter, decrypt=True, max_age=300)
        return str(value).encode()
    return settings.quota_salt.encode()


class DailyQuota:
    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        limit: int,
        key: bytes,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = client
        self._table = table_name
        self._limit = limit
        self._key = key
        self._clock = clock

    @classmethod
    def from_settings(cls, client: DynamoDBClient, settings: Settings) -> DailyQuota:
        return cls(client, settings.table_name, limit=settings.daily_quota_per_email, key=hashing_key(settings))

    def consume(self, email: str) -> None:
        """Count one new request for `email` today, or raise QuotaExceeded without counting it."""
        now = self._clock()
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"id": {"S": counter_id(email_digest(email, self._key), now.date())}},
                # Check and increment in one write: concurrent requests cannot both take the last one.
                UpdateExpression="ADD request_count :one SET expires_at = if_not_exists(expires_at, :expires)",
                ConditionExpression="attribute_not_exists(request_count) OR request_count < :limit",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(self._limit)},
                    # A day past its own day: DynamoDB deletes expired items within a day or two.
                    ":expires": {"N": str(int((next_utc_midnight(now) + timedelta(days=1)).timestamp()))},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise QuotaExceeded(self._limit, seconds_until_next_day(now)) from None
            raise
