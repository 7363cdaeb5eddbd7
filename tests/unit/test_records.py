"""Every transition is a conditional write: repeating one finds the record moved on and does nothing."""

from datetime import timedelta

import boto3
import pytest

from reimagine.models import RequestRecord, Status, new_request_id, utcnow
from reimagine.records import LeaseHeld, RequestStore


@pytest.fixture
def store(aws):
    return RequestStore(boto3.client("dynamodb"), aws.table_name)


def _pending(store: RequestStore) -> RequestRecord:
    now = utcnow()
    record = RequestRecord(
        id=new_request_id(),
        status=Status.PENDING_UPLOAD,
        email="jane@example.com",
        content_type="image/png",
        created_at=now,
        updated_at=now,
        expires_at=int(now.timestamp()) + 3600,
    )
    store.create(record)
    return record


def test_created_record_reads_back_unchanged(store):
    record = _pending(store)
    assert store.get(record.id) == record
    assert store.get(new_request_id()) is None


def test_create_refuses_to_overwrite(store):
    from botocore.exceptions import ClientError

    record = _pending(store)
    with pytest.raises(ClientError):
        store.create(record)


def test_claim_happens_once(store):
    record = _pending(store)
    first = store.claim(record.id, from_status=Status.PENDING_UPLOAD, working=Status.CAPTIONING, lease_seconds=60)
    assert first is not None and first.status is Status.CAPTIONING and first.attempts == 1
    with pytest.raises(LeaseHeld):
        store.claim(record.id, from_status=Status.PENDING_UPLOAD, working=Status.CAPTIONING, lease_seconds=60)


def _claim(store: RequestStore, request_id: str, delivery: str | None, lease_seconds: int = 90) -> RequestRecord | None:
    return store.claim(
        request_id,
        from_status=Status.PENDING_UPLOAD,
        working=Status.CAPTIONING,
        lease_seconds=lease_seconds,
        delivery=delivery,
    )


def test_the_retry_of_the_delivery_that_holds_a_live_claim_takes_it_over_at_once(store):
    # Given a claim whose worker died, its lease still live, held by delivery "s3:one"
    record = _pending(store)
    _claim(store, record.id, "s3:one")
    # When the event source retries that same delivery (which it does only once the attempt ended)
    taken = _claim(store, record.id, "s3:one")
    # Then the retry holds the step, as the claim's second attempt
    assert taken is not None and (taken.status, taken.attempts) == (Status.CAPTIONING, 2)


def test_another_delivery_finding_a_live_claim_is_told_it_is_held_not_that_there_is_nothing_to_do(store):
    # Given a live claim held by delivery "s3:one"
    record = _pending(store)
    _claim(store, record.id, "s3:one")
    # When another delivery tries to claim the step, Then it learns the claim is held (and retries later)
    with pytest.raises(LeaseHeld):
        _claim(store, record.id, "s3:two")


def test_a_finished_step_is_nothing_to_do_for_any_delivery(store):
    # Given a step done by delivery "s3:one"
    record = _pending(store)
    _claim(store, record.id, "s3:one")
    store.advance(record.id, from_status=Status.CAPTIONING, to=Status.CAPTIONED, caption="A red square.")
    # When that delivery comes again, Then there is nothing to claim
    assert _claim(store, record.id, "s3:one") is None


def test_a_worker_whose_claim_was_taken_over_cannot_move_the_record(store):
    # Given claim 1 taken over by claim 2 (the retry of the same delivery)
    record = _pending(store)
    first = _claim(store, record.id, "s3:one")
    _claim(store, record.id, "s3:one")
    assert first is not None
    # When claim 1's worker tries to save its result, Then the write is refused and the record stays claim 2's
    assert (
        store.advance(
            record.id, from_status=Status.CAPTIONING, to=Status.CAPTIONED, attempt=first.attempts, caption="late"
        )
        is None
    )
    assert store.get(record.id).status is Status.CAPTIONING


def test_an_expired_lease_can_be_taken_over(store):
    record = _pending(store)
    assert store.claim(record.id, from_status=Status.PENDING_UPLOAD, working=Status.CAPTIONING, lease_seconds=-5)
    taken = store.claim(record.id, from_status=Status.PENDING_UPLOAD, working=Status.CAPTIONING, lease_seconds=60)
    assert taken is not None and taken.attempts == 2


def test_release_gives_the_step_back_and_keeps_the_attempt_count(store):
    record = _pending(store)
    store.claim(record.id, from_status=Status.PENDING_UPLOAD, working=Status.CAPTIONING, lease_seconds=60)
    released = store.release(record.id, working=Status.CAPTIONING, back_to=Status.PENDING_UPLOAD)
    assert released is not None and released.status is Status.PENDING_UPLOAD and released.lease_until is None
    retaken = store.claim(record.id, from_status=Status.PENDING_UPLOAD, working=Status.CAPTIONING, lease_seconds=60)
    assert retaken is not None and retaken.attempts == 2


def test_advance_sets_fields_and_only_from_the_expected_state(store):
    record = _pending(store)
    assert store.advance(record.id, from_status=Status.CAPTIONING, to=Status.CAPTIONED, caption="x") is None
    store.claim(record.id, from_status=Status.PENDING_UPLOAD, working=Status.CAPTIONING, lease_seconds=60)
    done = store.advance(record.id, from_status=Status.CAPTIONING, to=Status.CAPTIONED, caption="A red square.")
    assert done is not None
    assert (done.status, done.caption, done.lease_until, done.attempts) == (
        Status.CAPTIONED,
        "A red square.",
        None,
        0,
    )
    assert store.advance(record.id, from_status=Status.CAPTIONING, to=Status.CAPTIONED, caption="other") is None
    assert store.get(record.id).caption == "A red square."


def test_fail_only_from_a_non_final_state(store):
    record = _pending(store)
    failed = store.fail(record.id, "NOT_AN_IMAGE", "the upload is not an image")
    assert failed is not None and failed.status is Status.FAILED
    assert failed.error is not None and failed.error.code == "NOT_AN_IMAGE"
    assert store.fail(record.id, "OTHER", "later") is None
    assert store.get(record.id).error.code == "NOT_AN_IMAGE"
    assert store.fail(new_request_id(), "X", "unknown id") is None


def test_notified_at_is_set_once(store):
    record = _pending(store)
    first = store.mark_notified(record.id)
    assert first is not None and first.notified_at is not None
    assert store.mark_notified(record.id) is None
    assert store.mark_notified(new_request_id()) is None


def test_timestamps_move_forward(store):
    record = _pending(store)
    later = record.updated_at + timedelta(seconds=5)
    ticking = RequestStore(boto3.client("dynamodb"), store._table, clock=lambda: later)
    claimed = ticking.claim(record.id, from_status=Status.PENDING_UPLOAD, working=Status.CAPTIONING, lease_seconds=1)
    assert claimed.updated_at - record.updated_at == timedelta(seconds=5)
