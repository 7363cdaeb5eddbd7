"""Addresses that get no more mail: SES reported a permanent bounce (no such mailbox) or a complaint.

Each is one item `suppressed#<hmac>` in RequestsTable, an HMAC-SHA256 under the same secret key as
the quota counters, so the table never holds the address. What the HMAC is taken of depends on why:
- a complaint suppresses the canonical mailbox (`reimagine.addresses.canonical_mailbox`): the person
  who complained gets no more mail at any spelling of their inbox (`jane.doe+1@gmail.com`,
  `janedoe@googlemail.com`). A complaint comes from whoever reads the mail; silencing `jane@corp`
  this way takes a mailbox `jane+x@corp` at her own domain, one where `+` is not a sub-address;
- a permanent bounce suppresses exactly the address that bounced (case-folded), never its mailbox:
  a bounce of `jane+x@example.com` at a domain without sub-addresses must not silence
  `jane@example.com`, or anyone could silence anyone.
An address is suppressed if either entry exists. The two are domain-separated in the HMAC input, so
a bounce never stands for a mailbox. Entries recorded before complaints folded (keyed on the address,
like a bounce) keep suppressing exactly that address; being hashes, they cannot be re-keyed. Entries
do not expire, as SES's own account-level suppression list does not; an operator removes one by
deleting its item.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import ClientError

from reimagine.addresses import canonical_mailbox
from reimagine.errors import ApiError
from reimagine.quota import hashing_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from reimagine.config import Settings

SUPPRESSED_PREFIX = "suppressed#"
Reason = Literal["bounce", "complaint"]
# A one-click unsubscribe (reimagine.confirmation) suppresses the mailbox, as a complaint does.
UNSUBSCRIBE = "unsubscribe"


class AddressSuppressed(ApiError):
    """Mail to this address bounced permanently or drew a complaint: no new request may send it mail."""

    counted_as = ("SuppressedAddressRefused",)

    def __init__(self) -> None:
        super().__init__(
            422,
            "ADDRESS_SUPPRESSED",
            "mail to this address bounced permanently, was reported as unwanted or was unsubscribed, so no more is "
            "sent to it; use another address",
        )


def address_digest(email: str, key: bytes) -> str:
    """The key of a permanent bounce: exactly this address (case-folded)."""
    # Domain-separated from the quota digests: the same address gives an unrelated key here. The
    # prefix is the one every entry had before complaints folded, so those entries still match.
    return hmac.new(key, f"suppressed:{email.strip().lower()}".encode(), hashlib.sha256).hexdigest()


def mailbox_digest(email: str, key: bytes) -> str:
    """The key of a complaint: the canonical mailbox, whichever spelling of it complained or is checked."""
    return hmac.new(key, f"suppressed-mailbox:{canonical_mailbox(email)}".encode(), hashlib.sha256).hexdigest()


# What each reason suppresses: the one address that bounced, or the whole mailbox that complained.
_DIGEST_OF: dict[Reason, Callable[[str, bytes], str]] = {"bounce": address_digest, "complaint": mailbox_digest}


def suppression_id(digest: str) -> str:
    return f"{SUPPRESSED_PREFIX}{digest}"


class SuppressionList:
    def __init__(self, client: DynamoDBClient, table_name: str, *, key: bytes) -> None:
        self._db = client
        self._table = table_name
        self._key = key

    @property
    def key(self) -> bytes:
        return self._key

    @classmethod
    def from_settings(cls, client: DynamoDBClient, settings: Settings) -> SuppressionList:
        return cls(client, settings.table_name, key=hashing_key(settings))

    def _key_of(self, digest: str) -> dict:
        return {"id": {"S": suppression_id(digest)}}

    def is_suppressed(self, email: str) -> bool:
        """True when this address bounced permanently or its mailbox complained (two consistent reads
        at most: the address's entry, then the mailbox's)."""
        return any(
            "Item"
            in self._db.get_item(TableName=self._table, Key=self._key_of(digest(email, self._key)), ConsistentRead=True)
            for digest in (address_digest, mailbox_digest)
        )

    def check(self, email: str) -> None:
        """Raise AddressSuppressed for an address that must get no more mail."""
        if self.is_suppressed(email):
            raise AddressSuppressed

    def suppress(self, email: str, *, reason: Reason, at: datetime, feedback_id: str) -> bool:
        """Record the address (a bounce) or its mailbox (a complaint); False when it already was (SES may
        report one event more than once)."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    **self._key_of(_DIGEST_OF[reason](email, self._key)),
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

    def unsubscribe(self, digest: str, *, at: datetime) -> bool:
        """Suppress the mailbox whose `mailbox_digest` an unsubscribe link carried; False when it already was."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item={**self._key_of(digest), "reason": {"S": UNSUBSCRIBE}, "reported_at": {"S": at.isoformat()}},
                ConditionExpression="attribute_not_exists(id)",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
