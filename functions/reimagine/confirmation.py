"""Double opt-in: only people who asked get mail, and one click stops it.

A request whose mailbox (`reimagine.addresses.canonical_mailbox`) has not confirmed within
`confirmed_for_days` waits in AWAITING_CONFIRMATION once its upload is validated, before any
provider is called, and the address gets one generic confirmation mail (at most one per
`COOLDOWN` and `MAILS_PER_DAY` per UTC day, however many requests arrive). Confirming moves every
waiting request of the mailbox back to PENDING_UPLOAD and has S3 announce its upload again, so
captioning starts over through its one entrance (the upload event, Lambda's async queue).

What is stored, in RequestsTable beside the quota counters (no `status`: no stream filter or index
sees them), never the address:
- `confirm#<hmac>`: the mailbox's state, keyed by an HMAC-SHA256 of the canonical mailbox under the
  deployment's secret key (`reimagine.quota.hashing_key`): `confirmed_until`, the waiting request
  ids, and when confirmation mail went out (`last_mail_at`, `mails_<day>`);
- `confirm-token#<sha256 of the token>`: a link's token as a hash only, with the mailbox it confirms,
  when it stops being valid and, once used, `used_at` (single use; the item outlives its validity a
  week so a late click is told "expired" rather than "unknown").

Unsubscribe links need no state: the token is the mailbox's suppression digest
(`reimagine.suppression.mailbox_digest`) and an HMAC of it, so a POST can suppress exactly that
mailbox and nobody can forge a link for another.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import ClientError

from reimagine import mail, storage
from reimagine.addresses import canonical_mailbox
from reimagine.errors import PipelineError
from reimagine.lifecycle import Divert
from reimagine.models import Status, upload_key, utcnow
from reimagine.observability import logger
from reimagine.suppression import mailbox_digest

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ses import SESClient

    from reimagine.config import Settings

CONFIRM_PREFIX = "confirm#"
TOKEN_PREFIX = "confirm-token#"  # noqa: S105 - a key prefix, not a secret
COOLDOWN = timedelta(minutes=15)
MAILS_PER_DAY = 3
# A used or expired token's item is kept this long past its validity, to say why a late click fails.
TOKEN_KEPT = timedelta(days=7)
UNCONFIRMED_CODE = "ADDRESS_UNCONFIRMED"

Verdict = Literal["confirmed", "used", "expired", "unknown"]


def confirmation_digest(email: str, key: bytes) -> str:
    """The key of a mailbox's confirmation state; domain-separated from the quota and suppression digests."""
    return hmac.new(key, f"confirmed-mailbox:{canonical_mailbox(email)}".encode(), hashlib.sha256).hexdigest()


def token_hash(token: str) -> str:
    # A plain hash is enough: the token has 256 random bits, so the hash cannot be searched back.
    return hashlib.sha256(token.encode()).hexdigest()


def _unsubscribe_signature(digest: str, key: bytes) -> str:
    return hmac.new(key, f"unsubscribe:{digest}".encode(), hashlib.sha256).hexdigest()[:32]


def unsubscribe_token(email: str, key: bytes) -> str:
    """`<mailbox suppression digest>.<signature>`: names the mailbox without the address, unforgeable."""
    digest = mailbox_digest(email, key)
    return f"{digest}.{_unsubscribe_signature(digest, key)}"


def unsubscribed_digest(token: str, key: bytes) -> str | None:
    """The suppression digest an unsubscribe token stands for, or None when it was not made here."""
    digest, dot, signature = token.partition(".")
    if not dot or len(digest) != 64:
        return None
    return digest if hmac.compare_digest(signature, _unsubscribe_signature(digest, key)) else None


@dataclass(frozen=True)
class MailLinks:
    """The links mail carries: to this API's confirm and unsubscribe pages."""

    api_base_url: str
    key: bytes

    def confirm(self, token: str) -> str:
        return f"{self.api_base_url.rstrip('/')}/confirm/{token}"

    def unsubscribe(self, email: str) -> str:
        return f"{self.api_base_url.rstrip('/')}/unsubscribe/{unsubscribe_token(email, self.key)}"


@dataclass
class Confirmed:
    """What a confirmation link did: its verdict, and the requests it set moving again."""

    verdict: Verdict
    waiting: list[str] = field(default_factory=list)


class Confirmations:
    """The confirmation state of mailboxes, and the tokens that confirm them."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        key: bytes,
        confirmed_for_days: int,
        link_days: int,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = client
        self._table = table_name
        self.key = key
        self._confirmed_for = timedelta(days=confirmed_for_days)
        self._link_valid = timedelta(days=link_days)
        self._clock = clock

    @classmethod
    def from_settings(cls, client: DynamoDBClient, settings: Settings) -> Confirmations:
        from reimagine.quota import hashing_key

        return cls(
            client,
            settings.table_name,
            key=hashing_key(settings),
            confirmed_for_days=settings.confirmed_for_days,
            link_days=settings.upload_retention_days,
        )

    def _mailbox(self, email: str) -> dict:
        return {"id": {"S": f"{CONFIRM_PREFIX}{confirmation_digest(email, self.key)}"}}

    def _now(self) -> tuple[datetime, int]:
        now = self._clock()
        return now, int(now.timestamp())

    def is_confirmed(self, email: str) -> bool:
        item = self._db.get_item(TableName=self._table, Key=self._mailbox(email), ConsistentRead=True).get("Item", {})
        return int(item.get("confirmed_until", {}).get("N", "0")) > self._now()[1]

    def wait_for(self, email: str, request_id: str) -> bool:
        """Register `request_id` as waiting for its mailbox; False when the mailbox is confirmed (it need not
        wait). One write: a confirmation landing just before it is seen here, one landing after takes it."""
        now, epoch = self._now()
        item = self._db.update_item(
            TableName=self._table,
            Key=self._mailbox(email),
            UpdateExpression="ADD waiting :id SET expires_at = if_not_exists(expires_at, :expires)",
            ExpressionAttributeValues={
                ":id": {"SS": [request_id]},
                ":expires": {"N": str(int((now + self._link_valid + TOKEN_KEPT).timestamp()))},
            },
            ReturnValues="ALL_NEW",
        )["Attributes"]
        if int(item.get("confirmed_until", {}).get("N", "0")) <= epoch:
            return True
        self._db.update_item(
            TableName=self._table,
            Key=self._mailbox(email),
            UpdateExpression="DELETE waiting :id",
            ExpressionAttributeValues={":id": {"SS": [request_id]}},
        )
        return False

    def reserve_mail(self, email: str) -> bool:
        """Take the mailbox's one confirmation mail of this moment: False inside the cooldown or past
        today's count. The check and the take are one conditional write."""
        now, epoch = self._now()
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._mailbox(email),
                UpdateExpression="SET last_mail_at = :now ADD #today :one",
                ConditionExpression="(attribute_not_exists(last_mail_at) OR last_mail_at <= :edge)"
                " AND (attribute_not_exists(#today) OR #today < :max)",
                ExpressionAttributeNames={"#today": f"mails_{now.date().isoformat()}"},
                ExpressionAttributeValues={
                    ":now": {"N": str(epoch)},
                    ":one": {"N": "1"},
                    ":edge": {"N": str(epoch - int(COOLDOWN.total_seconds()))},
                    ":max": {"N": str(MAILS_PER_DAY)},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def give_back_mail(self, email: str) -> None:
        """The mail did not go out: free the slot, so the retried upload event may send it."""
        now = self._clock()
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._mailbox(email),
                UpdateExpression="REMOVE last_mail_at ADD #today :minus_one",
                ExpressionAttributeNames={"#today": f"mails_{now.date().isoformat()}"},
                ExpressionAttributeValues={":minus_one": {"N": "-1"}},
            )
        except ClientError as exc:  # best effort: at worst the next mail waits for the cooldown
            logger.warning("could not give back a confirmation mail slot", extra={"error": str(exc)})

    def new_token(self, email: str) -> str:
        """A fresh single-use token for the mailbox; only its hash is stored."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        valid_until = now + self._link_valid
        self._db.put_item(
            TableName=self._table,
            Item={
                "id": {"S": f"{TOKEN_PREFIX}{token_hash(token)}"},
                "mailbox": {"S": self._mailbox(email)["id"]["S"]},
                "valid_until": {"N": str(int(valid_until.timestamp()))},
                "expires_at": {"N": str(int((valid_until + TOKEN_KEPT).timestamp()))},
            },
            ConditionExpression="attribute_not_exists(id)",
        )
        return token

    def check(self, token: str) -> Verdict:
        """What POSTing this token would do, without doing it (the GET page says so)."""
        item = self._token_item(token)
        return self._verdict_of(item) or "confirmed"

    def confirm(self, token: str) -> Confirmed:
        """Use the token: confirm its mailbox and hand back the requests that were waiting for it."""
        now, epoch = self._now()
        key = {"id": {"S": f"{TOKEN_PREFIX}{token_hash(token)}"}}
        try:
            used = self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET used_at = :now",
                ConditionExpression="attribute_exists(mailbox) AND attribute_not_exists(used_at)"
                " AND valid_until > :now",
                ExpressionAttributeValues={":now": {"N": str(epoch)}},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return Confirmed(self._verdict_of(self._token_item(token)) or "used")
        confirmed_until = now + self._confirmed_for
        before = self._db.update_item(
            TableName=self._table,
            Key={"id": used["mailbox"]},
            UpdateExpression="SET confirmed_until = :until, expires_at = :until REMOVE waiting",
            ExpressionAttributeValues={":until": {"N": str(int(confirmed_until.timestamp()))}},
            ReturnValues="ALL_OLD",
        ).get("Attributes", {})
        return Confirmed("confirmed", sorted(before.get("waiting", {}).get("SS", [])))

    def _token_item(self, token: str) -> dict:
        key = {"id": {"S": f"{TOKEN_PREFIX}{token_hash(token)}"}}
        return self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item", {})

    def _verdict_of(self, item: dict) -> Verdict | None:
        """Why a token cannot confirm (None when it can)."""
        if "mailbox" not in item:
            return "unknown"
        if "used_at" in item:
            return "used"
        if int(item["valid_until"]["N"]) <= self._now()[1]:
            return "expired"
        return None

    def resume(self, request_id: str) -> bool:
        """AWAITING_CONFIRMATION -> PENDING_UPLOAD, so the announced upload is claimed; False if it was not
        waiting (already resumed, or never held)."""
        now = self._clock()
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"id": {"S": request_id}},
                UpdateExpression="SET #s = :pending, updated_at = :now",
                ConditionExpression="#s = :waiting",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":pending": {"S": Status.PENDING_UPLOAD.value},
                    ":waiting": {"S": Status.AWAITING_CONFIRMATION.value},
                    ":now": {"S": now.isoformat(timespec="milliseconds").replace("+00:00", "Z")},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True


# ---- the caption step's gate, and the confirm link's resume -------------------------------------


@dataclass(frozen=True)
class Mailer:
    """How confirmation mail goes out: SES, the sender, the configuration set, the links it carries."""

    ses: SESClient
    sender: str
    configuration_set: str
    links: MailLinks


def hold_unless_confirmed(email: str, request_id: str, *, confirmations: Confirmations, mailer: Mailer) -> None:
    """Return when the mailbox is confirmed; else register the request as waiting, send the one
    confirmation mail this moment allows, and raise Divert to AWAITING_CONFIRMATION."""
    if not confirmations.wait_for(email, request_id):
        return
    if confirmations.reserve_mail(email):
        try:
            token = confirmations.new_token(email)
            message = mail.confirmation(mailer.links.confirm(token))
            mail.send(
                mailer.ses,
                sender=mailer.sender,
                to=email,
                message=message,
                configuration_set=mailer.configuration_set,
                unsubscribe_url=mailer.links.unsubscribe(email),
            )
        except ClientError as exc:
            confirmations.give_back_mail(email)
            failure = mail.send_failure(exc, sender=mailer.sender)
            if failure.permanent:
                raise PipelineError(
                    "the confirmation email could not be delivered to this address", code="CONFIRMATION_UNDELIVERABLE"
                ) from None
            raise
        except Exception:
            confirmations.give_back_mail(email)
            raise
        logger.info("confirmation email sent")
    raise Divert(Status.AWAITING_CONFIRMATION, "waiting for the address to be confirmed")


def resume(request_ids: list[str], *, confirmations: Confirmations, s3: S3Client, uploads_bucket: str) -> int:
    """Set waiting requests moving again: each back to PENDING_UPLOAD, then its upload announced again
    (ObjectCreated:Copy), which CaptionFunction takes as it took the upload. Returns how many moved."""
    moved = 0
    for request_id in request_ids:
        if not confirmations.resume(request_id):
            continue
        try:
            storage.reannounce_upload(s3, bucket=uploads_bucket, key=upload_key(request_id))
        except storage.UploadGone:
            # Kept past UploadRetentionDays: nothing to caption; the record expires with its TTL.
            logger.warning("a confirmed request's upload is gone", extra={"request_id": request_id})
            continue
        moved += 1
    return moved
