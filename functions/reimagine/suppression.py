"""Addresses that get no more mail: SES reported a permanent bounce (no such mailbox) or a complaint.

Each is one item `suppressed#<hmac>` in RequestsTable, an HMAC-SHA256 of the address under the same
secret key as the quota counters, so the table never holds the address. The address is taken as
written (case-folded), without the quota's `+tag` folding: a bounce of `jane+x@example.com` at a domain
without sub-addresses must not silence `jane@example.com`, or anyone could silence anyone. Entries
do not expire, as SES's own account-level suppression list does not; an operator removes one by
deleting its item.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import ClientError

from reimagine.quota import hashing_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from reimagine.config import Settings

SUPPRESSED_PREFIX = "suppressed#"
Reason = Literal["bounce", "complaint"]


class AddressSuppressed(Exception):
    """Mail to this address bounced permanently or drew a complaint: no new request may send it mail."""


def suppression_digest(email: str, key: bytes) -> str:
    # Domain-separated from the quota digests: the same address gives an unrelated key here.
    return hmac.new(key, f"suppressed:{email.strip().lower()}".encode(), hashlib.sha256).hexdigest()


def suppression_id(digest: str) -> str:
    return f"{SUPPRESSED_PREFIX}{digest}"


class SuppressionList:
    def __init__(self, client: DynamoDBClient, table_name: str, *, key: bytes) -> None:
        self._db = client
        self._table = table_name
        self._key = key

    @classmethod
    def from_settings(cls, client: DynamoDBClient, settings: Settings) -> SuppressionList:
        return cls(client, settings.table_name, key=hashing_key(settings))

    def _key_of(self, email: str) -> dict:
        return {"id": {"S": suppression_id(suppression_digest(email, self._key))}}

    def is_suppressed(self, email: str) -> bool:
        item = self._db.get_item(TableName=self._table, Key=self._key_of(email), ConsistentRead=True)
        return "Item" in item

    def check(self, email: str) -> None:
        """Raise AddressSuppressed for an address that must get no more mail."""
        if self.is_suppressed(email):
            raise AddressSuppressed

    def suppress(self, email: str, *, reason: Reason, at: datetime, feedback_id: str) -> bool:
        """Record the address; False when it already was (SES may report one event more than once)."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    **self._key_of(email),
                    "reason": {"S": reason},
                    "reported_at": {"S": at.isoformat()},
                    "feedback_id": {"S": feedback_id},
                },
                # The first report is kept: a redelivered event changes nothing.
                ConditionExpression="attribute_not_exists(id)",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
