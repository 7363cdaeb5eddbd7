"""RequestsTable data access: the only code that touches DynamoDB.

Every transition is a conditional write on `status`, so an event delivered twice finds the record
already moved on and does nothing. In-progress states (CAPTIONING, GENERATING) carry a lease: a
worker that crashed mid-step leaves a lease that expires, and the next delivery may take the step over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel

from reimagine.models import NON_FINAL, ErrorInfo, RequestRecord, Status, utcnow

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# Global secondary index on (status, updated_at): the sweeper reads exactly the requests that sat in
# one status since before a cutoff, oldest first. Items without a status (quota counters) are not in it.
STATUS_INDEX = "status-updated_at"
# Finished requests are looked for by a filter on these, so the index projects them too.
UNNOTIFIED_FILTER_ATTRIBUTES = ("notified_at", "notify_error")


class StuckCandidate(BaseModel):
    """A request as the status index shows it; `updated_at` is kept verbatim for conditional writes."""

    id: str
    status: Status
    updated_at: str
    lease_until: int | None = None
    redrives: int = 0
    # Finished requests: the notify step's claim and how often the sweeper re-drove the notification.
    notify_claimed_until: int | None = None
    notify_redrives: int = 0


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_item(record: RequestRecord) -> dict[str, Any]:
    plain = record.model_dump(mode="json", exclude_none=True)
    for field in ("created_at", "updated_at", "notified_at"):
        value = getattr(record, field)
        if value is not None:
            plain[field] = _iso(value)
    return {k: _serializer.serialize(v) for k, v in plain.items()}


def from_item(item: dict[str, Any]) -> RequestRecord:
    """A record from a DynamoDB item in wire format (as GetItem and stream images carry it)."""
    plain = {k: _deserializer.deserialize(v) for k, v in item.items()}
    return RequestRecord.model_validate(plain)


class RequestStore:
    def __init__(self, client: DynamoDBClient, table_name: str, clock: Callable[[], datetime] = utcnow):
        self._db = client
        self._table = table_name
        self._clock = clock

    # ---- reads and creation -----------------------------------------------------------------

    def create(self, record: RequestRecord) -> None:
        self._db.put_item(
            TableName=self._table,
            Item=to_item(record),
            ConditionExpression="attribute_not_exists(id)",
        )

    def get(self, request_id: str) -> RequestRecord | None:
        item = self._db.get_item(TableName=self._table, Key={"id": {"S": request_id}}, ConsistentRead=True)
        return from_item(item["Item"]) if "Item" in item else None

    # ---- transitions ------------------------------------------------------------------------

    def claim(
        self, request_id: str, *, from_status: Status, working: Status, lease_seconds: int
    ) -> RequestRecord | None:
        """Move `from_status` -> `working` (or take over an expired lease on `working`).

        Returns the record after the claim, or None when the step is done or someone else holds it.
        """
        now = self._clock()
        return self._update(
            request_id,
            "SET #s = :working, lease_until = :lease, attempts = if_not_exists(attempts, :zero) + :one, "
            "updated_at = :now",
            "#s = :from OR (#s = :working AND lease_until < :epoch)",
            {
                ":from": from_status.value,
                ":working": working.value,
                ":lease": int((now + timedelta(seconds=lease_seconds)).timestamp()),
                ":epoch": int(now.timestamp()),
                ":zero": 0,
                ":one": 1,
                ":now": _iso(now),
            },
        )

    def release(self, request_id: str, *, working: Status, back_to: Status) -> RequestRecord | None:
        """Give a claimed step back after a transient failure, so a later delivery can retry it."""
        return self._update(
            request_id,
            "SET #s = :back, updated_at = :now REMOVE lease_until",
            "#s = :working",
            {":back": back_to.value, ":working": working.value, ":now": _iso(self._clock())},
        )

    def advance(self, request_id: str, *, from_status: Status, to: Status, **fields: Any) -> RequestRecord | None:
        """Finish a step: `from_status` -> `to`, setting `fields`, clearing the lease and attempt count."""
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":f{i}": value for i, value in enumerate(fields.values())}
        sets = "".join(f", #f{i} = :f{i}" for i in range(len(fields)))
        return self._update(
            request_id,
            f"SET #s = :to, updated_at = :now{sets} REMOVE lease_until, attempts",
            "#s = :from",
            {":to": to.value, ":from": from_status.value, ":now": _iso(self._clock()), **values},
            names,
        )

    def fail(
        self, request_id: str, code: str, message: str, details: dict[str, str] | None = None
    ) -> RequestRecord | None:
        """End the request FAILED from any non-final state; None when it had already ended."""
        error = ErrorInfo(code=code, message=message, details=details).model_dump()
        placeholders = {f":nf{i}": s.value for i, s in enumerate(NON_FINAL)}
        return self._update(
            request_id,
            "SET #s = :failed, #e = :error, updated_at = :now REMOVE lease_until",
            f"#s IN ({', '.join(placeholders)})",
            {":failed": Status.FAILED.value, ":error": error, ":now": _iso(self._clock()), **placeholders},
            {"#e": "error"},
        )

    # ---- notification: a step on a finished request, claimed before the email is sent ----------

    def claim_notification(self, request_id: str, *, lease_seconds: int) -> RequestRecord | None:
        """Take the finished, not yet notified request for sending (or take over an expired claim).

        None when it is not final, already notified, permanently refused, or another delivery holds it.
        The claim does not touch `updated_at`: the sweeper measures how long the request sat unnotified.
        """
        now = self._clock()
        return self._update(
            request_id,
            "SET notify_claimed_until = :lease",
            "#s IN (:completed, :failed) AND attribute_not_exists(notified_at) AND attribute_not_exists(notify_error)"
            " AND (attribute_not_exists(notify_claimed_until) OR notify_claimed_until < :epoch)",
            {
                ":completed": Status.COMPLETED.value,
                ":failed": Status.FAILED.value,
                ":lease": int((now + timedelta(seconds=lease_seconds)).timestamp()),
                ":epoch": int(now.timestamp()),
            },
        )

    def release_notification(self, request_id: str, *, claimed_until: int) -> RequestRecord | None:
        """Give the claim back after a transient failure, so the retried stream record may take it.

        The attribute stays (at 0, long expired) rather than being removed: the Notify filter skips
        records that carry it, so a give-back does not itself trigger another delivery at once.
        """
        return self._update(
            request_id,
            "SET notify_claimed_until = :free",
            "notify_claimed_until = :mine AND attribute_not_exists(notified_at)",
            {":free": 0, ":mine": claimed_until},
            with_status=False,
        )

    def mark_notified(self, request_id: str) -> RequestRecord | None:
        """Record that the email went out; None when another delivery already recorded it."""
        return self._update(
            request_id,
            "SET notified_at = :now REMOVE notify_claimed_until",
            "attribute_exists(id) AND attribute_not_exists(notified_at)",
            {":now": _iso(self._clock())},
            with_status=False,
        )

    def reject_notification(self, request_id: str, code: str, message: str) -> RequestRecord | None:
        """Record that SES refused this email for good: it is never sent again, and the reason is kept."""
        error = ErrorInfo(code=code, message=message).model_dump()
        return self._update(
            request_id,
            "SET notify_error = :error REMOVE notify_claimed_until",
            "attribute_exists(id) AND attribute_not_exists(notified_at) AND attribute_not_exists(notify_error)",
            {":error": error},
            with_status=False,
        )

    # ---- the sweeper's reads and writes ------------------------------------------------------

    def stuck(self, status: Status, *, updated_before: datetime, limit: int) -> Iterator[StuckCandidate]:
        """Requests in `status` last updated before `updated_before`, oldest first, at most `limit`."""
        pages = self._db.get_paginator("query").paginate(
            TableName=self._table,
            IndexName=STATUS_INDEX,
            KeyConditionExpression="#s = :s AND updated_at < :before",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": status.value}, ":before": {"S": _iso(updated_before)}},
            PaginationConfig={"MaxItems": limit, "PageSize": min(limit, 100)},
        )
        for page in pages:
            for item in page.get("Items", []):
                plain = {k: _deserializer.deserialize(v) for k, v in item.items()}
                yield StuckCandidate.model_validate(plain)

    def redrive(self, seen: StuckCandidate, *, to: Status, max_redrives: int) -> RequestRecord | None:
        """Move a stuck request to `to` (its own status: a touch) so the stream emits it again.

        Only if it is still exactly as seen, holds no live lease, and has been re-driven fewer than
        `max_redrives` times; None otherwise.
        """
        now = self._clock()
        return self._update(
            seen.id,
            "SET #s = :to, updated_at = :now, redrives = if_not_exists(redrives, :zero) + :one REMOVE lease_until",
            f"{_UNCHANGED_AND_UNLEASED} AND (attribute_not_exists(redrives) OR redrives < :max)",
            {
                ":to": to.value,
                ":now": _iso(now),
                ":zero": 0,
                ":one": 1,
                ":max": max_redrives,
                **_seen_values(seen, now),
            },
        )

    def unnotified(
        self, status: Status, *, updated_before: datetime, updated_since: datetime, limit: int
    ) -> Iterator[StuckCandidate]:
        """Finished requests in `status`, last updated in [since, before), never notified nor refused.

        The lower bound keeps each read proportional to recent traffic rather than to every request
        the table still holds; the filter runs on attributes the index projects.
        """
        pages = self._db.get_paginator("query").paginate(
            TableName=self._table,
            IndexName=STATUS_INDEX,
            KeyConditionExpression="#s = :s AND updated_at BETWEEN :since AND :before",
            FilterExpression="attribute_not_exists(notified_at) AND attribute_not_exists(notify_error)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":s": {"S": status.value},
                ":since": {"S": _iso(updated_since)},
                ":before": {"S": _iso(updated_before - timedelta(milliseconds=1))},
            },
            PaginationConfig={"MaxItems": limit, "PageSize": min(limit, 100)},
        )
        for page in pages:
            for item in page.get("Items", []):
                plain = {k: _deserializer.deserialize(v) for k, v in item.items()}
                yield StuckCandidate.model_validate(plain)

    def redrive_notification(self, seen: StuckCandidate, *, max_redrives: int) -> RequestRecord | None:
        """Touch a finished, unnotified request (claim removed) so the stream hands it to Notify again.

        Only if it is still as seen, unnotified, unclaimed and re-driven fewer than `max_redrives` times.
        """
        now = self._clock()
        return self._update(
            seen.id,
            "SET updated_at = :now, notify_redrives = if_not_exists(notify_redrives, :zero) + :one "
            "REMOVE notify_claimed_until",
            f"{_UNCHANGED_UNNOTIFIED_UNCLAIMED} AND (attribute_not_exists(notify_redrives) OR notify_redrives < :max)",
            {":now": _iso(now), ":zero": 0, ":one": 1, ":max": max_redrives, **_seen_values(seen, now)},
        )

    def abandon_notification(self, seen: StuckCandidate, code: str, message: str) -> RequestRecord | None:
        """Give up on a notification re-driven too often: recorded as `notify_error`, never retried."""
        now = self._clock()
        error = ErrorInfo(code=code, message=message).model_dump()
        return self._update(
            seen.id,
            "SET notify_error = :error REMOVE notify_claimed_until",
            _UNCHANGED_UNNOTIFIED_UNCLAIMED,
            {":error": error, **_seen_values(seen, now)},
        )

    def fail_stuck(self, seen: StuckCandidate, code: str, message: str) -> RequestRecord | None:
        """End a stuck request FAILED, only if it is still exactly as seen and holds no live lease."""
        now = self._clock()
        error = ErrorInfo(code=code, message=message).model_dump()
        return self._update(
            seen.id,
            "SET #s = :failed, #e = :error, updated_at = :now REMOVE lease_until",
            _UNCHANGED_AND_UNLEASED,
            {":failed": Status.FAILED.value, ":error": error, ":now": _iso(now), **_seen_values(seen, now)},
            {"#e": "error"},
        )

    # ---- plumbing ---------------------------------------------------------------------------

    def _update(
        self,
        request_id: str,
        update: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
        *,
        with_status: bool = True,
    ) -> RequestRecord | None:
        attr_names = {**({"#s": "status"} if with_status else {}), **(names or {})}
        kwargs: dict[str, Any] = {}
        if attr_names:
            kwargs["ExpressionAttributeNames"] = attr_names
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key={"id": {"S": request_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues={k: _serializer.serialize(v) for k, v in values.items()},
                ReturnValues="ALL_NEW",
                **kwargs,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise
        return from_item(response["Attributes"])


# The index is eventually consistent: act only if the item is still what the index showed.
_UNCHANGED_AND_UNLEASED = (
    "#s = :seen_status AND updated_at = :seen_at AND (attribute_not_exists(lease_until) OR lease_until < :epoch)"
)


_UNCHANGED_UNNOTIFIED_UNCLAIMED = (
    "#s = :seen_status AND updated_at = :seen_at AND attribute_not_exists(notified_at)"
    " AND attribute_not_exists(notify_error)"
    " AND (attribute_not_exists(notify_claimed_until) OR notify_claimed_until < :epoch)"
)


def _seen_values(seen: StuckCandidate, now: datetime) -> dict[str, Any]:
    return {":seen_status": seen.status.value, ":seen_at": seen.updated_at, ":epoch": int(now.timestamp())}
