"""RequestsTable data access: the only code that touches DynamoDB.

Every transition is a conditional write on `status`, so an event delivered twice finds the record
already moved on and does nothing. In-progress states (CAPTIONING, GENERATING) carry a lease, the
delivery that holds it (`leased_by`) and the claim's number (`attempts`). A worker that died mid-step
leaves its lease behind: the event source's retry of that same delivery takes the step over at once
(it comes only after the attempt that died has ended), any other delivery once the lease has expired,
and one that finds a live lease held by another delivery is told so (LeaseHeld), never "done".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel

from reimagine.lifecycle import DELETABLE, FINISHED, NON_FINAL
from reimagine.models import ErrorInfo, RequestRecord, Status, utcnow

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# Global secondary index on (status, updated_at): the sweeper reads exactly the requests that sat in
# one status since before a cutoff, oldest first. Items without a status (quota counters) are not in it.
STATUS_INDEX = "status-updated_at"
# Finished requests are looked for by a filter on these, so the index projects them too.
UNNOTIFIED_FILTER_ATTRIBUTES = ("notified_at", "notify_error")


class LeaseHeld(Exception):
    """Another delivery holds a live claim on this step: this delivery must be retried later, not
    reported done (the holder may yet die, and this retry is then what finishes the request)."""

    def __init__(self, request_id: str, lease_until: int | None) -> None:
        super().__init__(f"request {request_id} is being worked on by another delivery until {lease_until}")
        self.request_id = request_id
        self.lease_until = lease_until


class Holder(BaseModel):
    """Who holds a request's step now: its status, and the lease and delivery of a claim on it."""

    status: Status
    lease_until: int | None = None
    leased_by: str | None = None


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

    def holder(self, request_id: str) -> Holder | None:
        """The request's status and current claim (read consistently); None when there is no such request."""
        item = self._db.get_item(
            TableName=self._table,
            Key={"id": {"S": request_id}},
            ConsistentRead=True,
            ProjectionExpression="#s, lease_until, leased_by",
            ExpressionAttributeNames={"#s": "status"},
        )
        if "Item" not in item:
            return None
        return Holder.model_validate({k: _deserializer.deserialize(v) for k, v in item["Item"].items()})

    # ---- transitions ------------------------------------------------------------------------

    def claim(
        self,
        request_id: str,
        *,
        from_status: Status,
        working: Status,
        lease_seconds: int,
        delivery: str | None = None,
    ) -> RequestRecord | None:
        """Move `from_status` -> `working`, or take the step over on `working` when nobody holds it:
        its lease expired, the sweeper re-drove it (no lease), or `delivery` is the one that held it.

        `delivery` names the event this attempt serves (the S3 event, the queue message): the event
        source retries a delivery only after its earlier attempt ended, so a retry may take over that
        attempt's claim at once instead of waiting for its lease. The record after the claim (its
        `attempts` numbers this claim); None when the step is not waiting (done, failed, not yet due).
        Raises LeaseHeld when another delivery holds a live lease.
        """
        now = self._clock()
        epoch = int(now.timestamp())
        takeover = "attribute_not_exists(lease_until) OR lease_until < :epoch"
        values: dict[str, Any] = {
            ":from": from_status.value,
            ":working": working.value,
            ":lease": int((now + timedelta(seconds=lease_seconds)).timestamp()),
            ":epoch": epoch,
            ":zero": 0,
            ":one": 1,
            ":now": _iso(now),
        }
        update = (
            "SET #s = :working, lease_until = :lease, attempts = if_not_exists(attempts, :zero) + :one, "
            "updated_at = :now"
        )
        if delivery is None:
            update += " REMOVE leased_by"
        else:
            update += ", leased_by = :delivery"
            takeover += " OR leased_by = :delivery"
            values[":delivery"] = delivery
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key={"id": {"S": request_id}},
                UpdateExpression=update,
                ConditionExpression=f"#s = :from OR (#s = :working AND ({takeover}))",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={k: _serializer.serialize(v) for k, v in values.items()},
                ReturnValues="ALL_NEW",
                # What refused the claim comes back with the refusal: no second read to tell "done"
                # from "someone else is on it".
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            found: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            current = from_item(found) if found else self.get(request_id)
            if current is not None and current.status is working:
                raise LeaseHeld(request_id, current.lease_until) from None
            return None
        return from_item(response["Attributes"])

    def release(
        self, request_id: str, *, working: Status, back_to: Status, attempt: int | None = None
    ) -> RequestRecord | None:
        """Give a claimed step back after a transient failure, so a later delivery can retry it.

        With `attempt` (the claim's number), only while that claim still holds the step."""
        condition, values = _held("#s = :working", attempt)
        return self._update(
            request_id,
            "SET #s = :back, updated_at = :now REMOVE lease_until, leased_by",
            condition,
            {":back": back_to.value, ":working": working.value, ":now": _iso(self._clock()), **values},
        )

    def advance(
        self, request_id: str, *, from_status: Status, to: Status, attempt: int | None = None, **fields: Any
    ) -> RequestRecord | None:
        """Finish a step: `from_status` -> `to`, setting `fields`, clearing the lease and attempt count.

        With `attempt` (the claim's number), only while that claim still holds the step."""
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":f{i}": value for i, value in enumerate(fields.values())}
        sets = "".join(f", #f{i} = :f{i}" for i in range(len(fields)))
        condition, held = _held("#s = :from", attempt)
        return self._update(
            request_id,
            f"SET #s = :to, updated_at = :now{sets} REMOVE lease_until, leased_by, attempts",
            condition,
            {":to": to.value, ":from": from_status.value, ":now": _iso(self._clock()), **values, **held},
            names,
        )

    def fail(
        self,
        request_id: str,
        code: str,
        message: str,
        details: dict[str, str] | None = None,
        *,
        attempt: int | None = None,
    ) -> RequestRecord | None:
        """End the request FAILED from any non-final state; None when it had already ended.

        With `attempt` (the claim's number), only while that claim still holds the step."""
        error = ErrorInfo(code=code, message=message, details=details).model_dump()
        placeholders = {f":nf{i}": s.value for i, s in enumerate(NON_FINAL)}
        condition, held = _held(f"#s IN ({', '.join(placeholders)})", attempt)
        return self._update(
            request_id,
            "SET #s = :failed, #e = :error, updated_at = :now REMOVE lease_until, leased_by",
            condition,
            {
                ":failed": Status.FAILED.value,
                ":error": error,
                ":now": _iso(self._clock()),
                **placeholders,
                **held,
            },
            {"#e": "error"},
        )

    # ---- notification: a step on a finished request, claimed before the email is sent ----------

    def claim_notification(self, request_id: str, *, lease_seconds: int) -> RequestRecord | None:
        """Take the finished, not yet notified request for sending (or take over an expired claim).

        None when it is not final, already notified, permanently refused, or another delivery holds it.
        The claim does not touch `updated_at`: the sweeper measures how long the request sat unnotified.
        """
        now = self._clock()
        finished = {f":n{i}": s.value for i, s in enumerate(FINISHED)}
        return self._update(
            request_id,
            "SET notify_claimed_until = :lease",
            f"#s IN ({', '.join(finished)}) AND attribute_not_exists(notified_at)"
            " AND attribute_not_exists(notify_error)"
            " AND (attribute_not_exists(notify_claimed_until) OR notify_claimed_until < :epoch)",
            {
                **finished,
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

    # ---- delete now: the owner's request becomes a tombstone ------------------------------------

    # What a tombstone drops: everything that says who asked or what the picture showed.
    TOMBSTONE_REMOVES = (
        "email",
        "caption",
        "caption_provider",
        "caption_model",
        "image_model",
        "result_key",
        "#e",
        "declared_size",
        "notify_error",
        "notify_claimed_until",
        "lease_until",
    )

    def tombstone(self, request_id: str) -> RequestRecord | None:
        """A finished request -> DELETED, keeping no personal data (address, caption, pictures' key, error).

        None when it is not finished. The item stays until its TTL, so its id reads as DELETED.
        """
        personal = ", ".join(self.TOMBSTONE_REMOVES)
        deletable = {f":d{i}": s.value for i, s in enumerate(DELETABLE)}
        return self._update(
            request_id,
            f"SET #s = :deleted, updated_at = :now REMOVE {personal}",
            f"#s IN ({', '.join(deletable)})",
            {
                ":deleted": Status.DELETED.value,
                **deletable,
                ":now": _iso(self._clock()),
            },
            {"#e": "error"},
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
            "SET #s = :to, updated_at = :now, redrives = if_not_exists(redrives, :zero) + :one "
            "REMOVE lease_until, leased_by",
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
            "SET #s = :failed, #e = :error, updated_at = :now REMOVE lease_until, leased_by",
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


def _held(condition: str, attempt: int | None) -> tuple[str, dict[str, Any]]:
    """`condition`, and while claim number `attempt` still holds the step when one is given: a worker
    whose step another delivery took over must not move the record under the new holder."""
    if attempt is None:
        return condition, {}
    return f"({condition}) AND attempts = :attempt", {":attempt": attempt}


def _seen_values(seen: StuckCandidate, now: datetime) -> dict[str, Any]:
    return {":seen_status": seen.status.value, ":seen_at": seen.updated_at, ":epoch": int(now.timestamp())}
