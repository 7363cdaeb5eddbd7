"""The sweeper: stuck requests are re-driven when that is safe, else end FAILED (STUCK); nothing loops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reimagine import clients
from reimagine.config import settings
from reimagine.handlers import sweeper
from reimagine.models import ErrorInfo, RequestRecord, Status, new_request_id
from reimagine.records import RequestStore, StuckCandidate
from reimagine.steps.sweeper import (
    NOTIFY_ABANDONED_CODE,
    NOTIFY_LOOKBACK,
    STUCK_CODE,
    STUCK_MESSAGES,
    UPLOAD_GONE_CODE,
    UPLOAD_GONE_MESSAGE,
    Action,
    decide,
    decide_notification,
    sweep,
)
from reimagine.storage import UploadGone, reannounce_upload
from tests.fixtures.clocks import DateClock
from tests.fixtures.events import load_event
from tests.fixtures.lambda_context import lambda_context

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
STUCK_AFTER = 900


@pytest.fixture
def clock() -> DateClock:
    return DateClock(T0)


@pytest.fixture
def store(table, clock) -> RequestStore:
    return RequestStore(boto3.client("dynamodb"), table.table_name, clock=clock)


def _put(store: RequestStore, status: Status, *, at: datetime, **fields) -> str:
    record = RequestRecord(
        id=new_request_id(),
        status=status,
        email="jane.doe@example.com",
        content_type="image/png",
        created_at=at,
        updated_at=at,
        expires_at=int((at + timedelta(days=30)).timestamp()),
        **fields,
    )
    store.create(record)
    return record.id


class Announcer:
    """Stands in for S3 announcing uploads again: records whose, or finds the upload gone."""

    def __init__(self, gone: bool = False) -> None:
        self.announced: list[str] = []
        self.gone = gone

    def __call__(self, request_id: str) -> None:
        if self.gone:
            raise UploadGone
        self.announced.append(request_id)


def _sweep(
    store: RequestStore,
    clock: DateClock,
    *,
    max_redrives: int = 2,
    max_items: int = 100,
    announcer: Announcer | None = None,
):
    return sweep(
        store,
        now=clock(),
        stuck_after_seconds=STUCK_AFTER,
        max_redrives=max_redrives,
        max_items=max_items,
        reannounce=announcer or Announcer(),
    )


def _raw(store: RequestStore, request_id: str) -> dict:
    return boto3.client("dynamodb").get_item(
        TableName=settings().table_name, Key={"id": {"S": request_id}}, ConsistentRead=True
    )["Item"]


# ---------------------------------------------------------------- the decision, without DynamoDB


def _candidate(status: Status, *, lease_until: int | None = None, redrives: int = 0) -> StuckCandidate:
    return StuckCandidate(
        id=new_request_id(),
        status=status,
        updated_at="2026-11-23T08:00:00.000Z",
        lease_until=lease_until,
        redrives=redrives,
    )


NOW = int(T0.timestamp())


@pytest.mark.parametrize(
    ("candidate", "action", "to"),
    [
        (_candidate(Status.CAPTIONED), Action.REDRIVE, Status.CAPTIONED),
        (_candidate(Status.GENERATING, lease_until=NOW - 1), Action.REDRIVE, Status.CAPTIONED),
        (_candidate(Status.GENERATING, lease_until=NOW + 60), Action.SKIP, None),
        (_candidate(Status.CAPTIONING, lease_until=NOW - 1), Action.REDRIVE, Status.CAPTIONING),
        (_candidate(Status.CAPTIONING, lease_until=NOW + 60), Action.SKIP, None),
        (_candidate(Status.CAPTIONING, lease_until=NOW - 1, redrives=2), Action.FAIL, None),
        (_candidate(Status.CAPTIONED, redrives=2), Action.FAIL, None),
        (_candidate(Status.GENERATING, lease_until=NOW - 1, redrives=2), Action.FAIL, None),
    ],
)
def test_decide(candidate: StuckCandidate, action: Action, to: Status | None) -> None:
    decision = decide(candidate, now_epoch=NOW, max_redrives=2)
    assert (decision.action, decision.to) == (action, to)
    assert decision.reason


@given(
    status=st.sampled_from([Status.CAPTIONING, Status.CAPTIONED, Status.GENERATING]),
    lease=st.one_of(st.none(), st.integers(NOW - 10_000, NOW + 10_000)),
    redrives=st.integers(0, 20),
    max_redrives=st.integers(0, 10),
)
def test_a_redrive_is_only_ever_offered_within_the_bound_and_without_a_live_lease(
    status: Status, lease: int | None, redrives: int, max_redrives: int
) -> None:
    decision = decide(
        _candidate(status, lease_until=lease, redrives=redrives), now_epoch=NOW, max_redrives=max_redrives
    )
    if decision.action is Action.REDRIVE:
        assert redrives < max_redrives
        assert lease is None or lease < NOW
        # Captioning is re-driven in place (its upload announced again); the others back to CAPTIONED.
        assert decision.to is (Status.CAPTIONING if status is Status.CAPTIONING else Status.CAPTIONED)
    if lease is not None and lease >= NOW:
        assert decision.action is Action.SKIP


# ---------------------------------------------------------------- sweeping the table


def test_a_captioned_request_whose_event_was_lost_is_touched_so_the_stream_emits_it_again(store, clock):
    # Given a request CAPTIONED an hour ago that generation never picked up
    request_id = _put(store, Status.CAPTIONED, at=T0 - timedelta(hours=1), caption="a red square")
    before = store.get(request_id)
    # When the sweeper runs
    report = _sweep(store, clock)
    # Then it is still CAPTIONED but modified (a new stream record), counted as a re-drive
    after = store.get(request_id)
    assert report.summary() == {"examined": 1, "redriven": 1}
    assert after is not None and before is not None
    assert after.status is Status.CAPTIONED and after.caption == "a red square"
    assert after.updated_at == T0 > before.updated_at
    assert _raw(store, request_id)["redrives"] == {"N": "1"}
    # And generation can claim it as usual
    assert store.claim(request_id, from_status=Status.CAPTIONED, working=Status.GENERATING, lease_seconds=60)


def test_a_generation_whose_worker_died_is_given_back(store, clock):
    # Given a request claimed for generation whose lease ran out long ago
    request_id = _put(store, Status.CAPTIONED, at=T0 - timedelta(hours=1), caption="x")
    clock.advance(-3600)
    store.claim(request_id, from_status=Status.CAPTIONED, working=Status.GENERATING, lease_seconds=150)
    clock.advance(3600)
    # When the sweeper runs
    report = _sweep(store, clock)
    # Then the claim is back at CAPTIONED without a lease, its attempt still counted
    after = store.get(request_id)
    assert report.outcomes == {"redriven": 1}
    assert after is not None and after.status is Status.CAPTIONED
    assert after.lease_until is None and after.attempts == 1


def _dead_caption(store: RequestStore, clock: DateClock, delivery: str = "s3:first-event") -> str:
    """A request whose caption worker died an hour ago: CAPTIONING, its lease long expired, and the
    upload event's retries spent."""
    request_id = _put(store, Status.PENDING_UPLOAD, at=T0 - timedelta(hours=1))
    clock.advance(-3600)
    store.claim(
        request_id, from_status=Status.PENDING_UPLOAD, working=Status.CAPTIONING, lease_seconds=90, delivery=delivery
    )
    clock.advance(3600)
    return request_id


def test_a_caption_whose_worker_died_has_its_upload_announced_again(store, clock):
    # Given a request whose caption worker died an hour ago
    request_id = _dead_caption(store, clock)
    announcer = Announcer()
    # When the sweeper runs
    report = _sweep(store, clock, announcer=announcer)
    # Then S3 is asked to announce its upload again, and the request counted as re-driven
    assert (report.outcomes, announcer.announced) == ({"redriven": 1}, [request_id])


def test_a_re_driven_caption_is_free_for_the_new_upload_event_to_claim(store, clock):
    # Given a dead caption the sweeper re-drove
    request_id = _dead_caption(store, clock, delivery="s3:first-event")
    _sweep(store, clock)
    # When the announced upload's event (a new delivery) reaches the caption step
    claimed = store.claim(
        request_id,
        from_status=Status.PENDING_UPLOAD,
        working=Status.CAPTIONING,
        lease_seconds=90,
        delivery="s3:copy-event",
    )
    # Then it holds the step, as the step's next attempt (a re-drive grants no extra attempts)
    assert claimed is not None and (claimed.status, claimed.attempts) == (Status.CAPTIONING, 2)


def test_a_caption_re_driven_too_often_ends_failed_with_a_reason_the_user_is_told(store, clock):
    # Given a dead caption, announced again twice without any worker ever finishing it
    request_id = _dead_caption(store, clock)
    outcomes = []
    for _ in range(3):
        outcomes.append(dict(_sweep(store, clock, max_redrives=2).outcomes))
        clock.advance(STUCK_AFTER + 1)
    # Then the third sweep ends it FAILED (STUCK) with a message the user can read
    after = store.get(request_id)
    assert outcomes == [{"redriven": 1}, {"redriven": 1}, {"failed": 1}]
    assert after is not None and after.status is Status.FAILED and after.lease_until is None
    assert after.error == ErrorInfo(code=STUCK_CODE, message=STUCK_MESSAGES[Status.CAPTIONING])
    # It now matches the Notify filter: FAILED and not yet notified.
    assert after.notified_at is None


def test_a_caption_whose_upload_is_gone_ends_failed_saying_so(store, clock):
    # Given a dead caption whose upload has expired from the bucket
    request_id = _dead_caption(store, clock)
    # When the sweeper tries to have it announced again
    report = _sweep(store, clock, announcer=Announcer(gone=True))
    # Then the request ends FAILED with its own plain reason
    after = store.get(request_id)
    assert report.outcomes == {"failed": 1}
    assert after is not None and after.error == ErrorInfo(code=UPLOAD_GONE_CODE, message=UPLOAD_GONE_MESSAGE)


def test_re_drives_are_bounded_then_the_request_fails(store, clock):
    # Given a CAPTIONED request that nothing ever picks up, however often it is re-emitted
    request_id = _put(store, Status.CAPTIONED, at=T0 - timedelta(hours=1))
    outcomes = []
    for _ in range(7):
        clock.advance(STUCK_AFTER + 1)
        outcomes.append(dict(_sweep(store, clock, max_redrives=2).outcomes))
    # Then it is re-driven twice and failed once; its failure email (never sent here) is re-driven
    # twice and given up; then it is left alone for good
    assert outcomes == [
        {"redriven": 1},
        {"redriven": 1},
        {"failed": 1},
        {"notify_redriven": 1},
        {"notify_redriven": 1},
        {"notify_abandoned": 1},
        {},
    ]
    record = store.get(request_id)
    assert record is not None and record.status is Status.FAILED
    assert record.error is not None and record.error.code == STUCK_CODE


@pytest.mark.parametrize(
    ("status", "fields"),
    [
        (Status.PENDING_UPLOAD, {}),
        (Status.COMPLETED, {"notified_at": T0 - timedelta(days=2)}),
        (Status.FAILED, {"notified_at": T0 - timedelta(days=2)}),
        (Status.COMPLETED, {"notify_error": ErrorInfo(code="MessageRejected", message="Address blacklisted.")}),
    ],
)
def test_waiting_uploads_and_notified_or_refused_requests_are_left_alone(store, clock, status: Status, fields):
    request_id = _put(store, status, at=T0 - timedelta(days=2), **fields)
    before = _raw(store, request_id)
    assert _sweep(store, clock).summary() == {"examined": 0}
    assert _raw(store, request_id) == before


# ---------------------------------------------------------------- finished requests never notified


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED])
def test_a_finished_request_whose_email_never_went_out_is_touched_so_notify_gets_it_again(store, clock, status: Status):
    # Given a request finished an hour ago whose email SES refused until the stream gave up
    request_id = _put(store, status, at=T0 - timedelta(hours=1))
    clock.advance(-3600)
    claimed = store.claim_notification(request_id, lease_seconds=60)
    assert claimed is not None and claimed.notify_claimed_until is not None
    store.release_notification(request_id, claimed_until=claimed.notify_claimed_until)
    clock.advance(3600)
    # When the sweeper runs
    report = _sweep(store, clock)
    # Then the record is touched (a new stream record) with the claim removed, counted as a re-drive
    assert report.summary() == {"examined": 1, "notify_redriven": 1}
    raw = _raw(store, request_id)
    assert "notify_claimed_until" not in raw and raw["notify_redrives"] == {"N": "1"}
    assert raw["status"] == {"S": status.value} and raw["updated_at"] == {"S": "2026-11-23T09:00:00.000Z"}
    # And the notify step can claim it as usual
    assert store.claim_notification(request_id, lease_seconds=60) is not None


def test_an_email_being_sent_is_left_alone(store, clock):
    request_id = _put(store, Status.COMPLETED, at=T0 - timedelta(hours=1))
    assert store.claim_notification(request_id, lease_seconds=60) is not None
    before = _raw(store, request_id)

    assert _sweep(store, clock).summary() == {"examined": 1, "skipped": 1}
    assert _raw(store, request_id) == before


def test_unsent_emails_are_looked_for_among_recent_requests_only(store, clock):
    # A request finished beyond the lookback was already re-driven and given up on, or predates it.
    _put(store, Status.COMPLETED, at=T0 - NOTIFY_LOOKBACK - timedelta(seconds=STUCK_AFTER + 1))
    recent = _put(store, Status.COMPLETED, at=T0 - timedelta(hours=1))

    assert _sweep(store, clock).summary() == {"examined": 1, "notify_redriven": 1}
    assert _raw(store, recent)["notify_redrives"] == {"N": "1"}


def test_an_email_re_driven_too_often_is_given_up_and_recorded(store, clock):
    # Given a request COMPLETED an hour ago whose email never goes
    request_id = _put(store, Status.COMPLETED, at=T0 - timedelta(hours=1))
    # When four sweeps run, each a stuck-period apart
    outcomes = []
    for _ in range(4):
        outcomes.append(dict(_sweep(store, clock, max_redrives=2).outcomes))
        clock.advance(STUCK_AFTER + 1)
    # Then it is re-driven twice, then given up on and the give-up recorded, then left alone
    assert outcomes == [{"notify_redriven": 1}, {"notify_redriven": 1}, {"notify_abandoned": 1}, {}]
    record = store.get(request_id)
    assert record is not None and record.notified_at is None
    assert record.notify_error == ErrorInfo(
        code=NOTIFY_ABANDONED_CODE, message="the email was not sent after 2 re-drives"
    )


@pytest.mark.parametrize(
    ("claimed_until", "notify_redrives", "action"),
    [
        (None, 0, Action.NOTIFY_REDRIVE),
        (0, 1, Action.NOTIFY_REDRIVE),
        (NOW + 60, 0, Action.SKIP),
        (NOW - 1, 2, Action.NOTIFY_ABANDON),
    ],
)
def test_decide_notification(claimed_until, notify_redrives, action):
    candidate = StuckCandidate(
        id=new_request_id(),
        status=Status.COMPLETED,
        updated_at="2026-11-23T08:00:00.000Z",
        notify_claimed_until=claimed_until,
        notify_redrives=notify_redrives,
    )
    assert decide_notification(candidate, now_epoch=NOW, max_redrives=2).action is action


def test_recent_and_leased_requests_are_left_alone(store, clock):
    # Given a request not yet stuck, and one whose claim is an hour old with its lease still live
    recent = _put(store, Status.CAPTIONED, at=T0 - timedelta(seconds=STUCK_AFTER - 1))
    # A claim an hour old whose lease is still live (a worker granted a long lease).
    leased = _put(store, Status.CAPTIONED, at=T0 - timedelta(hours=2))
    clock.advance(-3600)
    store.claim(leased, from_status=Status.CAPTIONED, working=Status.GENERATING, lease_seconds=7200)
    clock.advance(3600)
    before = {rid: _raw(store, rid) for rid in (recent, leased)}

    # When the sweeper runs
    report = _sweep(store, clock)

    # Then it examines only the old one, skips it, and changes neither
    assert report.summary() == {"examined": 1, "skipped": 1}
    assert {rid: _raw(store, rid) for rid in (recent, leased)} == before


def test_quota_counters_in_the_same_table_are_never_swept(store, clock):
    ddb = boto3.client("dynamodb")
    table = settings().table_name
    ddb.put_item(TableName=table, Item={"id": {"S": "quota#abc#2026-11-22"}, "request_count": {"N": "3"}})
    assert _sweep(store, clock).summary() == {"examined": 0}


def test_a_request_that_moved_on_after_it_was_listed_is_not_touched(store, clock):
    # Given a stuck CAPTIONED request listed by the (eventually consistent) index
    request_id = _put(store, Status.CAPTIONED, at=T0 - timedelta(hours=1))
    (seen,) = store.stuck(Status.CAPTIONED, updated_before=T0, limit=10)
    # When generation claims it before the sweeper writes
    store.claim(request_id, from_status=Status.CAPTIONED, working=Status.GENERATING, lease_seconds=60)
    # Then neither the re-drive nor the failure applies
    assert store.redrive(seen, to=Status.CAPTIONED, max_redrives=2) is None
    assert store.fail_stuck(seen, STUCK_CODE, "stalled") is None
    record = store.get(request_id)
    assert record is not None and record.status is Status.GENERATING


def test_work_per_run_is_bounded_and_runs_make_progress(store, clock):
    ids = {_put(store, Status.CAPTIONED, at=T0 - timedelta(hours=1, minutes=i)) for i in range(5)}
    first = _sweep(store, clock, max_items=2)
    second = _sweep(store, clock, max_items=2)
    third = _sweep(store, clock, max_items=2)
    assert [r.examined for r in (first, second, third)] == [2, 2, 1]
    assert sum(r.outcomes["redriven"] for r in (first, second, third)) == 5
    for request_id in ids:
        assert _raw(store, request_id)["redrives"] == {"N": "1"}


def test_the_handler_sweeps_on_the_scheduled_event(table):
    stuck = RequestStore(clients.dynamodb(), table.table_name)
    request_id = _put(stuck, Status.CAPTIONED, at=datetime.now(UTC) - timedelta(hours=1))
    event = load_event("schedule_sweeper.json")

    result = sweeper.handler(event, lambda_context("SweeperFunction", 60, 256))

    assert result == {"examined": 1, "redriven": 1}
    assert _raw(stuck, request_id)["redrives"] == {"N": "1"}


# ---------------------------------------------------------------- announcing an upload again (S3)


def test_an_upload_announced_again_keeps_its_bytes_and_type(aws):
    # Given an upload in the bucket
    s3 = boto3.client("s3")
    key = f"uploads/{new_request_id()}"
    s3.put_object(Bucket=aws.uploads_bucket, Key=key, Body=b"\x89PNG photo", ContentType="image/png")
    before = s3.head_object(Bucket=aws.uploads_bucket, Key=key)
    # When the sweeper has S3 announce it again (a copy onto itself)
    reannounce_upload(s3, bucket=aws.uploads_bucket, key=key)
    # Then it is the same object, written anew
    after = s3.head_object(Bucket=aws.uploads_bucket, Key=key)
    assert (after["ETag"], after["ContentType"], after["ContentLength"]) == (
        before["ETag"],
        "image/png",
        before["ContentLength"],
    )


def test_an_upload_that_is_gone_cannot_be_announced_again(aws):
    with pytest.raises(UploadGone):
        reannounce_upload(boto3.client("s3"), bucket=aws.uploads_bucket, key=f"uploads/{new_request_id()}")


def test_the_handler_re_drives_a_dead_caption_through_its_upload(table):
    # Given a request whose caption worker died an hour ago, its upload still in the bucket
    store = RequestStore(clients.dynamodb(), table.table_name)
    request_id = _put(store, Status.CAPTIONING, at=datetime.now(UTC) - timedelta(hours=1), lease_until=1)
    clients.s3().put_object(Bucket=table.uploads_bucket, Key=f"uploads/{request_id}", Body=b"photo")
    event = load_event("schedule_sweeper.json")
    # When the scheduled sweep runs, Then the request is re-driven (its upload announced again)
    assert sweeper.handler(event, lambda_context("SweeperFunction", 60, 256)) == {"examined": 1, "redriven": 1}


# ---------------------------------------------------------------- requests whose address never confirmed


def test_a_request_unconfirmed_past_the_upload_retention_ends_failed(store, clock):
    # Given a request waiting for its address's confirmation since longer than the upload is kept
    request_id = _put(store, Status.AWAITING_CONFIRMATION, at=T0 - timedelta(days=1, seconds=1))
    recent = _put(store, Status.AWAITING_CONFIRMATION, at=T0 - timedelta(hours=1))
    # When the sweeper runs with a one-day confirmation window
    report = sweep(
        store,
        now=clock(),
        stuck_after_seconds=STUCK_AFTER,
        max_redrives=2,
        max_items=100,
        reannounce=Announcer(),
        unconfirmed_after_seconds=86400,
    )
    # Then that one ends FAILED CONFIRMATION_EXPIRED (Notify mails no unconfirmed address), the recent one waits
    assert report.summary() == {"examined": 1, "unconfirmed_ended": 1}
    ended, waiting = store.get(request_id), store.get(recent)
    assert ended is not None and ended.error is not None and ended.error.code == "CONFIRMATION_EXPIRED"
    assert waiting is not None and waiting.status is Status.AWAITING_CONFIRMATION
