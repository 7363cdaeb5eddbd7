"""Event delivery: what Lambda's S3 async invocations and DynamoDB event source mappings do, locally.

Only public AWS APIs are used (SQS for the bucket notifications, DynamoDB Streams reads), so the same
pollers work against moto's server, LocalStack and a real account.

- S3: each S3 trigger has its own SQS queue, the target of a bucket notification with the trigger's
  events and key filter (see resources.py). A message is delivered as the function's event exactly as
  S3 wrote it; a failing invocation is retried up to EventInvokeConfig.MaximumRetryAttempts (default 2)
  times, then an async-invocation record goes to the OnFailure queue. Retries run at once rather than
  after AWS's minutes of back-off. With `concurrency` above 1, that many events are invoked at once.
  An event is in Lambda's async queue from its receive until it is done (invoked, retried, or sent to
  on-failure): its message stays invisible that long (received with a visibility from the function's
  Timeout, extended while it is held), so SQS never hands it to a second worker mid-run, and a stack
  killed meanwhile gets it again once the visibility lapses, as Lambda's durable queue would.
- The async queue (S3 and schedules): an event waits while every environment of the function is busy
  (a throttle, which is not an attempt) and is tried again after a short pause; an event older than
  EventInvokeConfig.MaximumEventAgeInSeconds (its age from when it was queued: SQS's SentTimestamp,
  else the S3 record's eventTime) is not invoked again: it goes to the OnFailure destination with the
  condition EventAgeExceeded, as Lambda sends it.
- Schedules: a `rate(...)` Schedule event invokes the function asynchronously every period, first one
  period after start (as a new EventBridge rule does), with the same retries and on-failure handling.
- Streams: each (function, stream trigger) pair is one event source mapping with its own position in
  every shard. Records are filtered (FilterCriteria), batched (BatchSize), and failures handled as Lambda
  does: ReportBatchItemFailures resumes from the lowest failed sequence number, an exception fails the
  whole batch, BisectBatchOnFunctionError halves a failing batch (splits do not count as retries),
  MaximumRetryAttempts bounds retries, after which the batch's metadata go to the OnFailure queue and
  the position moves past it. Records fetched but not yet delivered are held in memory: this position is
  the mapping's checkpoint. ParallelizationFactor runs up to that many batches of a shard at once,
  each item's records in one lane, in order.
- Pipes: an EventBridge pipe from a stream to an SQS queue reads the stream exactly as a stream mapping
  does (PipeSource is the same reader); its target is SendMessageBatch, one message per record with the
  record's JSON as the body. Messages the queue refuses are a partial failure (retried from the first),
  an error halves the batch (AUTOMATIC_BISECT), and retries past MaximumRetryAttempts send the batch's
  position to the DeadLetterConfig queue in Pipes' shape.
- Queues: an SQS event source mapping (QueueMapping) long-polls its queue and invokes with Lambda's SQS
  event, up to its MaximumConcurrency (else the function's concurrency) invocations at once, each worker
  taking the next batch as soon as it is free. What succeeded is deleted; a failed message is made
  visible again at once and the queue's own RedrivePolicy moves it to its dead-letter queue after
  maxReceiveCount receives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError

from reimagine_emulator.filters import passes
from reimagine_emulator.invoke import Invoker, Throttled
from reimagine_tools.template import Function, Pipe, QueueTrigger, S3Trigger, ScheduleTrigger, StreamTrigger

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("reimagine_emulator")

# AWS retries a failing stream batch until its records expire (MaximumRetryAttempts -1, up to a day);
# locally that would never drain, so an unbounded mapping stops after this many retries.
UNBOUNDED_RETRY_LIMIT = 10
# A throttled async event is tried again after this pause, doubling up to the cap (Lambda backs off
# for minutes; locally an environment frees up in well under a second).
THROTTLE_PAUSE_SECONDS = 0.05
THROTTLE_PAUSE_CAP_SECONDS = 1.0
# SQS's bounds for a message's visibility timeout.
MAX_VISIBILITY_SECONDS = 12 * 60 * 60


def lease_seconds(fn: Function) -> int:
    """How long a received S3 event stays invisible before it is extended again: one whole invocation
    (the function's Timeout) and a margin for the receive and the handover, at least SQS's default 30 s."""
    return min(MAX_VISIBILITY_SECONDS, max(30, fn.timeout + 30))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error_payload(error: BaseException) -> dict[str, Any]:
    return {"errorMessage": str(error), "errorType": type(error).__name__}


class FailureDestinations:
    """Sends on-failure records to SQS destinations named by ARN (the only kind the template uses)."""

    def __init__(self, sqs: SQSClient) -> None:
        self.sqs = sqs
        self._urls: dict[str, str] = {}

    def send(self, arn: str | None, record: dict[str, Any]) -> None:
        if not arn:
            log.warning("no OnFailure destination: dropping %s", json.dumps(record.get("requestContext")))
            return
        if ":sqs:" not in arn:
            log.warning("OnFailure destination %s is not an SQS queue; not supported locally", arn)
            return
        if arn not in self._urls:
            _, _, _, _, account, name = arn.split(":", 5)
            self._urls[arn] = self.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        self.sqs.send_message(QueueUrl=self._urls[arn], MessageBody=json.dumps(record))


@dataclass
class Delivered:
    """What one delivery did; `after_invoke` hooks receive it."""

    target: str  # the function's (or pipe's) logical id
    source: str
    subject: str
    outcome: str
    ms: float


class _Source:
    """Something to poll. `poll` returns how much it found or did (0: nothing new); `label` names it in logs."""

    label: str

    def __init__(self, failures: FailureDestinations, after_invoke: Callable[[Delivered], None] | None) -> None:
        self.failures = failures
        self.after_invoke = after_invoke
        self._report_lock = threading.Lock()  # invocations may report from several threads

    def poll(self, wait_seconds: int = 0) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Stop what runs in the background; what is in flight finishes."""

    def _report(self, source: str, subject: str, outcome: str, ms: float) -> None:
        with self._report_lock:
            log.info("%s %s %s %s %.0f ms", self.label, source, subject, outcome, ms)
            if self.after_invoke:
                self.after_invoke(Delivered(self.label, source, subject, outcome, ms))


class _FunctionSource(_Source):
    """A source that invokes one function."""

    def __init__(
        self,
        fn: Function,
        invoker: Invoker,
        failures: FailureDestinations,
        after_invoke: Callable[[Delivered], None] | None,
        *,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(failures, after_invoke)
        self.fn = fn
        self.label = fn.logical_id
        self.invoker = invoker
        self.wall_clock = wall_clock  # epoch seconds: event ages are measured against AWS's timestamps
        self.sleep = sleep

    def _call(
        self, source: str, subject: str, event: Any, *, wait: bool = True
    ) -> tuple[Any, BaseException | None, float]:
        """(result, function error, ms). With `wait` False a busy function raises Throttled instead."""
        started = time.perf_counter()
        try:
            # Only the async queue asks not to wait; other callers keep the plain invoke(fn, event).
            result = self.invoker.invoke(self.fn, event) if wait else self.invoker.invoke(self.fn, event, wait=False)
            error = None
        except Throttled:
            raise
        except Exception as exc:  # a function error, as Lambda reports it
            result, error = None, exc
        return result, error, (time.perf_counter() - started) * 1000

    def _invoke_async(self, source: str, subject: str, event: Any, queued_at: float | None = None) -> None:
        """An asynchronous invocation from Lambda's async queue: retried per EventInvokeConfig, waiting
        (not an attempt) while the function is throttled, until MaximumEventAgeInSeconds from
        `queued_at` (epoch seconds; default now); then the on-failure destination."""
        config = self.fn.invoke_config
        queued_at = self.wall_clock() if queued_at is None else queued_at
        attempts = 1 + max(0, config.maximum_retry_attempts)
        attempt, error, pause = 0, None, THROTTLE_PAUSE_SECONDS
        while attempt < attempts:
            if self.wall_clock() - queued_at > config.maximum_event_age_seconds:
                self._give_up_async(source, subject, event, "EventAgeExceeded", attempt, error)
                return
            try:
                _, error, ms = self._call(source, subject, event, wait=False)
            except Throttled:
                self.sleep(pause)
                pause = min(pause * 2, THROTTLE_PAUSE_CAP_SECONDS)
                continue
            attempt += 1
            if error is None:
                self._report(source, subject, "ok" if attempt == 1 else f"ok on attempt {attempt}", ms)
                return
            self._report(source, subject, f"error ({type(error).__name__}: {error}) attempt {attempt}/{attempts}", ms)
        self._give_up_async(source, subject, event, "RetriesExhausted", attempt, error)

    def _give_up_async(
        self, source: str, subject: str, event: Any, condition: str, invocations: int, error: BaseException | None
    ) -> None:
        record: dict[str, Any] = {
            "version": "1.0",
            "timestamp": _now_iso(),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"{self.fn.arn}:$LATEST",
                "condition": condition,
                "approximateInvokeCount": invocations,
            },
            "requestPayload": event,
        }
        if invocations:  # what the last invocation answered; an event never invoked has no response
            record["responseContext"] = {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
            record["responsePayload"] = _error_payload(error) if error else {}
        self.failures.send(self.fn.invoke_config.on_failure, record)
        why = "retries exhausted" if condition == "RetriesExhausted" else "event too old (EventAgeExceeded)"
        log.info("%s %s %s %s: sent to the on-failure destination", self.fn.logical_id, source, subject, why)


class _Pollers:
    """Up to `concurrency` workers on one queue, each taking the next batch as soon as it is free, as
    Lambda's pollers do, and running beside the other sources instead of holding up their turn.

    `poll` starts workers while some are free and messages are waiting and returns what was delivered
    since the last poll plus the batches still running, so a drain does not stop before they end. With
    one worker, each poll handles one batch inline (the in-process invoker runs one at a time anyway).
    """

    def __init__(
        self,
        name: str,
        concurrency: int,
        receive: Callable[[int], list[dict[str, Any]]],
        deliver: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        self.name = name
        self.concurrency = max(1, concurrency)
        self._receive = receive
        self._deliver = deliver
        self._pool = (
            ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=name) if self.concurrency > 1 else None
        )
        self._workers: set[Future[None]] = set()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._delivered = 0  # messages handled since the last poll

    def poll(self, wait_seconds: int = 0) -> int:
        if self._pool is None:
            batch = self._receive(wait_seconds)
            if batch:
                self._deliver(batch)
            return len(batch)
        self._reap()
        started = 0
        while len(self._workers) < self.concurrency and not self._closing.is_set():
            batch = self._receive(0 if self._workers else wait_seconds)
            if not batch:
                break
            self._workers.add(self._pool.submit(self._work, batch))
            started += len(batch)
        if self._workers and not started:  # only running work: let it run instead of spinning the pass
            wait(self._workers, timeout=0.1, return_when=FIRST_COMPLETED)
            self._reap()
        with self._lock:
            delivered, self._delivered = self._delivered, 0
        return started + delivered + len(self._workers)

    def _reap(self) -> None:
        for future in [f for f in self._workers if f.done()]:
            self._workers.discard(future)
            if future.exception() is not None:
                log.error("%s worker failed: %s", self.name, future.exception())

    def _work(self, batch: list[dict[str, Any]]) -> None:
        """One poller: this batch, then the next ones while the queue has any."""
        while batch:
            self._deliver(batch)
            with self._lock:
                self._delivered += len(batch)
            if self._closing.is_set():
                return
            batch = self._receive(0)

    def close(self) -> None:
        self._closing.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class _Leases:
    """The messages a poller holds, kept invisible until released: every third of `seconds` each one's
    visibility is set to `seconds` again from a daemon thread, however long its event waits or runs.
    The thread runs only while something is held."""

    def __init__(self, sqs: SQSClient, queue_url: str, seconds: int, name: str) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.seconds = seconds
        self.name = name
        self._held: set[str] = set()  # receipt handles
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, messages: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            self._held.update(str(message["ReceiptHandle"]) for message in messages)
            if self._held and self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name=f"{self.name}-leases", daemon=True)
                self._thread.start()

    def release(self, message: Mapping[str, Any]) -> None:
        with self._lock:
            self._held.discard(str(message["ReceiptHandle"]))

    def renew(self) -> None:
        """Extend every held message's visibility to `seconds` from now."""
        with self._lock:
            held = sorted(self._held)
        for start in range(0, len(held), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": self.seconds}
                for i, handle in enumerate(held[start : start + 10])
            ]
            try:
                response = self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)  # type: ignore[arg-type]
            except (ClientError, BotoCoreError) as exc:  # the endpoint away a moment: next round tries again
                log.warning("%s: could not extend %d messages' visibility: %s", self.name, len(entries), exc)
                continue
            for failed in response.get("Failed", []):  # deleted meanwhile, most likely: nothing to keep
                log.debug("%s: visibility not extended: %s", self.name, failed.get("Message"))

    def _run(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            with self._lock:
                if not self._held:  # hold() starts another when there is something to keep again
                    self._thread = None
                    return
            self.renew()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)


class S3Notifications(_FunctionSource):
    """One S3 trigger: the SQS queue its bucket notification writes to. A received message is an event
    in Lambda's async queue: held invisible (see `_Leases`) until it is done, then deleted."""

    def __init__(
        self,
        fn: Function,
        trigger: S3Trigger,
        queue_url: str,
        sqs: SQSClient,
        invoker: Invoker,
        failures: FailureDestinations,
        after_invoke: Callable[[Delivered], None] | None = None,
        *,
        concurrency: int = 1,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        visibility_seconds: int | None = None,
    ) -> None:
        super().__init__(fn, invoker, failures, after_invoke, wall_clock=wall_clock, sleep=sleep)
        self.trigger = trigger
        self.queue_url = queue_url
        self.sqs = sqs
        # Lambda's async queue feeds as many invocations at once as the function may run, each taking
        # the next event when it is done; events beyond that wait in the queue (here: in SQS).
        self.concurrency = max(1, concurrency)
        self._pollers = _Pollers(f"{fn.logical_id}-async", self.concurrency, self._receive, self._handle_all)
        # The queue's own VisibilityTimeout (SQS's default 30 s) would let a longer caption be received
        # again mid-run: each receive sets its own, and held messages are extended until done.
        self.visibility_seconds = visibility_seconds or lease_seconds(fn)
        self._leases = _Leases(sqs, queue_url, self.visibility_seconds, f"{fn.logical_id}-async")

    def _receive(self, wait_seconds: int) -> list[dict[str, Any]]:
        # One event per worker when they run side by side; in one process, a batch handled in order.
        count = 1 if self.concurrency > 1 else 10
        messages = [
            dict(m)
            for m in self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=wait_seconds,
                VisibilityTimeout=self.visibility_seconds,
                MessageSystemAttributeNames=["SentTimestamp"],  # when S3 queued the event: its age
            ).get("Messages", [])
        ]
        self._leases.hold(messages)
        return messages

    def _handle_all(self, messages: list[dict[str, Any]]) -> None:
        try:
            for message in messages:
                self._handle(message)
        finally:  # what a failure left unhandled goes back to the queue when its visibility lapses
            for message in messages:
                self._leases.release(message)

    def poll(self, wait_seconds: int = 0) -> int:
        return self._pollers.poll(wait_seconds)

    def close(self) -> None:
        self._pollers.close()
        self._leases.close()

    def _handle(self, message: Mapping[str, Any]) -> None:
        sent = (message.get("Attributes") or {}).get("SentTimestamp")
        try:
            self._deliver(json.loads(message["Body"]), int(sent) / 1000 if sent else None)
            # Handled, including retries and the on-failure record: done with it.
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        finally:
            self._leases.release(message)

    def _deliver(self, event: dict[str, Any], queued_at: float | None = None) -> None:
        if event.get("Event") == "s3:TestEvent":  # S3 sends one when the notification is configured
            return
        # Keys arrive URL-encoded; the log shows them decoded (the event itself is passed on untouched).
        keys = [unquote_plus(r.get("s3", {}).get("object", {}).get("key", "?")) for r in event.get("Records", [])]
        subject = ",".join(keys) or "?"
        self._invoke_async("s3", subject, event, queued_at if queued_at is not None else _event_time(event))


def _event_time(event: dict[str, Any]) -> float | None:
    """The first S3 record's eventTime (ISO 8601) in epoch seconds, if it has one."""
    for record in event.get("Records", []):
        stamp = record.get("eventTime")
        if isinstance(stamp, str):
            try:
                return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return None
    return None


class Schedule(_FunctionSource):
    """A `Schedule: rate(...)` event: EventBridge's "Scheduled Event", one period after start and then
    every period. An invocation that is not done when the next falls due is not overlapped (the next
    runs once it can). Cron expressions are not run locally (logged at start)."""

    def __init__(
        self,
        fn: Function,
        trigger: ScheduleTrigger,
        invoker: Invoker,
        failures: FailureDestinations,
        after_invoke: Callable[[Delivered], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(fn, invoker, failures, after_invoke, wall_clock=wall_clock, sleep=sleep)
        self.trigger = trigger
        self.period = trigger.period_seconds if trigger.enabled else None
        self.clock = clock
        self.next_due = clock() + (self.period or 0.0)  # meaningless without a period
        if trigger.enabled and self.period is None:
            log.warning("%s schedule %s: only rate(...) runs locally", fn.logical_id, trigger.expression)

    def poll(self, wait_seconds: int = 0) -> int:
        if self.period is None or self.clock() < self.next_due:
            return 0
        # Skipped periods (a long pause) fire once, as one missed EventBridge target would.
        while self.next_due <= self.clock():
            self.next_due += self.period
        self.fire()
        return 1

    def fire(self) -> None:
        """Invoke now, as a due run would (same event, retries and on-failure handling); the period's
        own timing is unchanged. Lets a test or an operator run the sweeper without waiting for it."""
        self._invoke_async("schedule", self.trigger.expression, self.event())

    def event(self) -> dict[str, Any]:
        _, _, _, region, account, *_ = self.fn.arn.split(":")
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": [f"arn:aws:events:{region}:{account}:rule/{self.trigger.rule_name}"],
            "detail": {},
        }


def lambda_stream_record(raw: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A DynamoDB Streams GetRecords record in the shape Lambda delivers it."""
    dynamodb = dict(raw["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    record = {
        "eventID": raw["eventID"],
        "eventName": raw["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": raw.get("awsRegion") or region,
        "dynamodb": {
            key: dynamodb[key]
            for key in (
                "ApproximateCreationDateTime",
                "Keys",
                "NewImage",
                "OldImage",
                "SequenceNumber",
                "SizeBytes",
                "StreamViewType",
            )
            if key in dynamodb
        },
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in raw:  # TTL deletions say who removed the item
        record["userIdentity"] = raw["userIdentity"]
    return record


def _lane_of(record: dict[str, Any], factor: int) -> int:
    """A stable lane for the record's item key, so all records of one item go one after another."""
    keys = json.dumps(record["dynamodb"]["Keys"], sort_keys=True).encode()
    return int.from_bytes(hashlib.sha256(keys).digest()[:8], "big") % factor


def _batch_subject(batch: Sequence[dict[str, Any]]) -> str:
    """The batch's item keys, readable: `id=abc, id=def +3 more`."""
    keys = [
        ",".join(f"{name}={next(iter(value.values()), '?')}" for name, value in r["dynamodb"].get("Keys", {}).items())
        for r in batch
    ]
    more = f" +{len(keys) - 3} more" if len(keys) > 3 else ""
    return ", ".join(keys[:3]) + more


@dataclass
class _Shard:
    shard_id: str
    iterator: str | None
    pending: list[dict[str, Any]] = field(default_factory=list)
    last_sequence: str | None = None
    retries: int = 0
    invocations: int = 0
    cap: int = 0
    lanes: dict[int, _Shard] = field(default_factory=dict)  # ParallelizationFactor > 1: by key


class _StreamReader(_Source):
    """Reads one DynamoDB stream as an event source mapping does, with its own shard positions:
    filters, batches, partial failures, bisect, retries, the on-failure record. Subclasses say where
    a batch goes (`_send`) and what the on-failure record says about who gave up."""

    def __init__(
        self,
        label: str,
        trigger: StreamTrigger,
        stream_arn: str,
        streams: DynamoDBStreamsClient,
        failures: FailureDestinations,
        region: str,
        *,
        start_at_latest: bool = False,
        after_invoke: Callable[[Delivered], None] | None = None,
    ) -> None:
        super().__init__(failures, after_invoke)
        self.label = label
        self.trigger = trigger
        self.stream_arn = stream_arn
        self.streams = streams
        self.region = region
        self.shards: dict[str, _Shard] = {}
        retries = trigger.maximum_retry_attempts
        self.max_retries = retries if retries >= 0 else UNBOUNDED_RETRY_LIMIT
        # Shards present when the mapping is created start where StartingPosition says; shards that
        # appear later are read from their beginning, as Lambda does, so no record falls in a gap.
        self._discover(at_latest=start_at_latest)

    # Where a batch goes ---------------------------------------------------------------------------

    source = "stream"

    def _send(self, batch: Sequence[dict[str, Any]]) -> tuple[Any, BaseException | None, float]:
        """(a ReportBatchItemFailures-shaped result, the exception if the whole batch failed, ms)."""
        raise NotImplementedError

    def _failure_context(self, shard: _Shard, error: BaseException | None) -> dict[str, Any]:
        """The on-failure record's fields besides version, timestamp and DDBStreamBatchInfo."""
        raise NotImplementedError

    # Reading --------------------------------------------------------------------------------------

    def _discover(self, at_latest: bool = False) -> None:
        described: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self.streams.describe_stream(**kwargs)["StreamDescription"]
            described.extend(dict(shard) for shard in description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            kwargs["ExclusiveStartShardId"] = last
        for shard in described:
            shard_id = shard["ShardId"]
            if shard_id not in self.shards:
                kind: Literal["LATEST", "TRIM_HORIZON"] = "LATEST" if at_latest else "TRIM_HORIZON"
                iterator = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType=kind
                )["ShardIterator"]
                self.shards[shard_id] = _Shard(shard_id, iterator, cap=self.trigger.batch_size)

    def poll(self, wait_seconds: int = 0) -> int:
        if not self.trigger.enabled:
            return 0
        self._discover()
        activity = 0
        for shard in self.shards.values():
            activity += self._fetch(shard)
            activity += self._process(shard)
        return activity

    def _fetch(self, shard: _Shard) -> int:
        fetched = 0
        while shard.iterator:
            try:
                response = self.streams.get_records(ShardIterator=shard.iterator, Limit=1000)
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                if code == "TrimmedDataAccessException":
                    # The position is older than the stream still holds (AWS keeps 24 h; a busy shared
                    # LocalStack trims sooner): go on from the oldest record, as a mapping does.
                    log.warning(
                        "%s stream %s trimmed past its position: reading from the oldest record",
                        self.label,
                        shard.shard_id,
                    )
                    shard.iterator = self.streams.get_shard_iterator(
                        StreamArn=self.stream_arn, ShardId=shard.shard_id, ShardIteratorType="TRIM_HORIZON"
                    )["ShardIterator"]
                    continue
                if code != "ExpiredIteratorException":
                    raise
                shard.iterator = self._iterator_after(shard)
                continue
            records = response.get("Records", [])
            shard.iterator = response.get("NextShardIterator")  # None once a closed shard is read
            for raw in records:
                fetched += 1
                shard.last_sequence = raw["dynamodb"]["SequenceNumber"]
                record = lambda_stream_record(dict(raw), self.stream_arn, self.region)
                if passes(record, self.trigger.filters):
                    shard.pending.append(record)
                else:  # filtered out: never delivered, and the position moves on
                    log.debug("%s stream %s filtered out", self.label, shard.last_sequence)
            if not records:
                break
        return fetched

    def _iterator_after(self, shard: _Shard) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
        if shard.last_sequence:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.last_sequence)
        else:
            kwargs.update(ShardIteratorType="TRIM_HORIZON")
        return self.streams.get_shard_iterator(**kwargs)["ShardIterator"]

    def _process(self, shard: _Shard) -> int:
        factor = self.trigger.parallelization_factor
        if factor <= 1:
            return self._process_batches(shard)
        # ParallelizationFactor: up to `factor` batches of this shard at once. Records go to a lane by
        # their item key, as Lambda routes them by partition key, so one item's records keep their order.
        for record in shard.pending:
            lane = _lane_of(record, factor)
            if lane not in shard.lanes:
                shard.lanes[lane] = _Shard(shard.shard_id, None, cap=self.trigger.batch_size)
            shard.lanes[lane].pending.append(record)
        shard.pending.clear()
        busy = [lane for lane in shard.lanes.values() if lane.pending]
        if len(busy) <= 1:
            return sum(self._process_batches(lane) for lane in busy)
        with ThreadPoolExecutor(max_workers=len(busy), thread_name_prefix=f"{self.label}-lane") as pool:
            return sum(pool.map(self._process_batches, busy))

    def _process_batches(self, shard: _Shard) -> int:
        invocations = 0
        while shard.pending:
            batch = shard.pending[: shard.cap]
            failed_at, error = self._invoke(shard, batch)
            invocations += 1
            shard.invocations += 1
            if failed_at is None:  # success: checkpoint past the batch
                del shard.pending[: len(batch)]
                shard.retries, shard.invocations, shard.cap = 0, 0, self.trigger.batch_size
                continue
            if failed_at > 0:  # partial: checkpoint up to the first failure and retry from it
                del shard.pending[:failed_at]
                shard.retries, shard.invocations = 0, 0
                continue
            if error is not None and self.trigger.bisect_on_error and len(batch) > 1:
                shard.cap = (len(batch) + 1) // 2
                continue
            shard.retries += 1
            if shard.retries > self.max_retries:
                self._give_up(shard, batch, error)
                del shard.pending[: len(batch)]
                shard.retries, shard.invocations, shard.cap = 0, 0, self.trigger.batch_size
        return invocations

    def _invoke(self, shard: _Shard, batch: Sequence[dict[str, Any]]) -> tuple[int | None, BaseException | None]:
        """(index of the first failed record or None, the exception if the whole batch failed)."""
        subject = _batch_subject(batch)
        result, error, ms = self._send(batch)
        if error is not None:
            self._report(self.source, subject, f"error ({type(error).__name__}: {error})", ms)
            return 0, error
        failed = self._failed_index(batch, result)
        if failed is None:
            self._report(self.source, subject, "ok", ms)
            return None, None
        if failed < 0:
            self._report(self.source, subject, "error (invalid batchItemFailures: whole batch fails)", ms)
            return 0, ValueError("invalid batchItemFailures")
        sequence = batch[failed]["dynamodb"]["SequenceNumber"]
        self._report(self.source, subject, f"partial (retry from {sequence})", ms)
        return failed, None

    def _failed_index(self, batch: Sequence[dict[str, Any]], result: Any) -> int | None:
        """Lowest failed index per ReportBatchItemFailures; -1 when the response is invalid."""
        if not self.trigger.report_batch_item_failures or not isinstance(result, dict):
            return None
        failures = result.get("batchItemFailures") or []
        if not failures:
            return None
        positions = {record["dynamodb"]["SequenceNumber"]: i for i, record in enumerate(batch)}
        indexes = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if identifier not in positions:
                return -1
            indexes.append(positions[identifier])
        return min(indexes)

    def _give_up(self, shard: _Shard, batch: Sequence[dict[str, Any]], error: BaseException | None) -> None:
        def arrival(record: dict[str, Any]) -> str:
            created = record["dynamodb"].get("ApproximateCreationDateTime", 0)
            return datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")

        self.failures.send(
            self.trigger.on_failure,
            {
                **self._failure_context(shard, error),
                "version": "1.0",
                "timestamp": _now_iso(),
                "DDBStreamBatchInfo": {
                    "shardId": shard.shard_id,
                    "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                    "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                    "approximateArrivalOfFirstRecord": arrival(batch[0]),
                    "approximateArrivalOfLastRecord": arrival(batch[-1]),
                    "batchSize": len(batch),
                    "streamArn": self.stream_arn,
                },
            },
        )
        log.info(
            "%s stream %s..%s retries exhausted: sent to the on-failure destination",
            self.label,
            batch[0]["dynamodb"]["SequenceNumber"],
            batch[-1]["dynamodb"]["SequenceNumber"],
        )


class StreamMapping(_StreamReader):
    """One event source mapping: a function's DynamoDB stream trigger, with its own shard positions."""

    def __init__(
        self,
        fn: Function,
        trigger: StreamTrigger,
        stream_arn: str,
        streams: DynamoDBStreamsClient,
        invoker: Invoker,
        failures: FailureDestinations,
        region: str,
        *,
        start_at_latest: bool = False,
        after_invoke: Callable[[Delivered], None] | None = None,
    ) -> None:
        self.fn = fn
        self.invoker = invoker
        super().__init__(
            fn.logical_id,
            trigger,
            stream_arn,
            streams,
            failures,
            region,
            start_at_latest=start_at_latest,
            after_invoke=after_invoke,
        )

    def _send(self, batch: Sequence[dict[str, Any]]) -> tuple[Any, BaseException | None, float]:
        started = time.perf_counter()
        try:
            result, error = self.invoker.invoke(self.fn, {"Records": list(batch)}), None
        except Exception as exc:  # a function error, as Lambda reports it
            result, error = None, exc
        return result, error, (time.perf_counter() - started) * 1000

    def _failure_context(self, shard: _Shard, error: BaseException | None) -> dict[str, Any]:
        # Lambda's "Retaining discarded batches for a DynamoDB event source" record.
        response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if error is not None:
            response_context["functionError"] = "Unhandled"
        return {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.fn.arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": shard.invocations,
            },
            "responseContext": response_context,
        }


def pipe_trigger(pipe: Pipe) -> StreamTrigger:
    """A pipe's source settings as the stream reader takes them: its target's refusals are partial
    failures (ReportBatchItemFailures) and AUTOMATIC_BISECT halves a batch that fails as a whole."""
    return StreamTrigger(
        name=pipe.logical_id,
        table=pipe.table,
        batch_size=pipe.batch_size,
        starting_position=pipe.starting_position,
        filters=pipe.filters,
        report_batch_item_failures=True,
        maximum_retry_attempts=pipe.maximum_retry_attempts,
        bisect_on_error=True,
        on_failure=pipe.dead_letter,
        enabled=pipe.enabled,
    )


class PipeSource(_StreamReader):
    """An EventBridge pipe from a DynamoDB stream to an SQS queue: the stream read as a mapping reads
    it, each batch sent with SendMessageBatch (one message per record, the record's JSON as the body)."""

    source = "pipe"

    def __init__(
        self,
        pipe: Pipe,
        stream_arn: str,
        streams: DynamoDBStreamsClient,
        sqs: SQSClient,
        queue_url: str,
        failures: FailureDestinations,
        region: str,
        account_id: str,
        *,
        start_at_latest: bool = False,
    ) -> None:
        self.pipe = pipe
        self.sqs = sqs
        self.queue_url = queue_url
        self.arn = f"arn:aws:pipes:{region}:{account_id}:pipe/{pipe.name}"
        super().__init__(
            pipe.logical_id,
            pipe_trigger(pipe),
            stream_arn,
            streams,
            failures,
            region,
            start_at_latest=start_at_latest,
        )

    def _send(self, batch: Sequence[dict[str, Any]]) -> tuple[Any, BaseException | None, float]:
        started = time.perf_counter()
        entries = [{"Id": str(i), "MessageBody": json.dumps(record)} for i, record in enumerate(batch)]
        try:
            response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)  # type: ignore[arg-type]
        except ClientError as exc:
            return None, exc, (time.perf_counter() - started) * 1000
        failed = [batch[int(entry["Id"])]["dynamodb"]["SequenceNumber"] for entry in response.get("Failed", [])]
        result = {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in failed]}
        return result, None, (time.perf_counter() - started) * 1000

    def _failure_context(self, shard: _Shard, error: BaseException | None) -> dict[str, Any]:
        # Pipes' dead-letter record for a stream source: who gave up (the pipe) and why; the batch's
        # position follows in DDBStreamBatchInfo as in Lambda's record.
        return {
            "context": {
                "partnerResourceArn": self.arn,
                "condition": "RetryAttemptsExhausted",
                "requestId": str(uuid.uuid4()),
                "approximateInvokeCount": shard.invocations,
            }
        }


def lambda_sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS ReceiveMessage message in the shape Lambda's SQS event delivers it."""
    attributes = message.get("Attributes") or {}
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": list(value.get("StringListValues") or []),
            "binaryListValues": list(value.get("BinaryListValues") or []),
            "dataType": value.get("DataType", "String"),
        }
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            name: str(attributes[name])
            for name in ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp")
            if name in attributes
        },
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def _message_subject(messages: Sequence[Mapping[str, Any]]) -> str:
    """A batch's request ids when the bodies are stream records, else its message ids."""
    names = []
    for message in messages:
        try:
            keys = json.loads(message["Body"])["dynamodb"]["Keys"]
            names.append(",".join(f"{k}={next(iter(v.values()), '?')}" for k, v in keys.items()))
        except (ValueError, KeyError, TypeError, AttributeError, StopIteration):
            names.append(str(message["MessageId"]))
    more = f" +{len(names) - 3} more" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


class QueueMapping(_FunctionSource):
    """An SQS event source mapping: Lambda's pollers receive batches (up to BatchSize, at most 10 a
    receive) and invoke with the SQS event, up to MaximumConcurrency (else the function's own
    concurrency) at once; whichever worker is free takes the next batch. A successful invocation's
    messages are deleted; with ReportBatchItemFailures only the listed ones fail, otherwise an error
    fails the batch. A failed message is made visible again at once (ChangeMessageVisibility 0):
    locally the retry does not wait out the queue's VisibilityTimeout, as the S3 path retries at once
    too. The queue's RedrivePolicy, applied by the queue itself, moves a message received
    maxReceiveCount times to its dead-letter queue."""

    def __init__(
        self,
        fn: Function,
        trigger: QueueTrigger,
        queue_url: str,
        queue_arn: str,
        sqs: SQSClient,
        invoker: Invoker,
        failures: FailureDestinations,
        region: str,
        after_invoke: Callable[[Delivered], None] | None = None,
        *,
        concurrency: int = 1,
    ) -> None:
        super().__init__(fn, invoker, failures, after_invoke)
        self.trigger = trigger
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.sqs = sqs
        self.region = region
        self.concurrency = max(1, min(concurrency, trigger.maximum_concurrency or concurrency))
        self._pollers = _Pollers(f"{fn.logical_id}-sqs", self.concurrency, self._receive, self._deliver)

    def _receive(self, wait_seconds: int) -> list[dict[str, Any]]:
        return [
            dict(m)
            for m in self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=max(1, min(10, self.trigger.batch_size)),
                WaitTimeSeconds=wait_seconds,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
        ]

    def poll(self, wait_seconds: int = 0) -> int:
        return self._pollers.poll(wait_seconds) if self.trigger.enabled else 0

    def close(self) -> None:
        self._pollers.close()

    def _deliver(self, batch: Sequence[dict[str, Any]]) -> None:
        subject = _message_subject(batch)
        event = {"Records": [lambda_sqs_record(m, self.queue_arn, self.region) for m in batch]}
        result, error, ms = self._call("sqs", subject, event)
        ids = [str(m["MessageId"]) for m in batch]
        if error is not None:
            failed, outcome = set(ids), f"error ({type(error).__name__}: {error})"
        else:
            failed = self._failed_ids(ids, result)
            outcome = "ok" if not failed else f"partial ({len(failed)} of {len(ids)} failed)"
        receives = {str(m["MessageId"]): (m.get("Attributes") or {}).get("ApproximateReceiveCount", "?") for m in batch}
        if failed:
            outcome += f", receive {max(str(receives[i]) for i in failed)}"
        self._report("sqs", subject, outcome, ms)
        done = [m for m in batch if str(m["MessageId"]) not in failed]
        again = [m for m in batch if str(m["MessageId"]) in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        if again:
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(again)
                ],
            )

    def _failed_ids(self, ids: Sequence[str], result: Any) -> set[str]:
        """The messages that failed per ReportBatchItemFailures; all of them if the response is invalid."""
        if not self.trigger.report_batch_item_failures or not isinstance(result, dict):
            return set()
        failures = result.get("batchItemFailures") or []
        named = {f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures}
        return set(ids) if not named <= set(ids) else {str(i) for i in named}


class Delivery:
    """All sources of one stack: drained synchronously (tests) or polled by a background thread."""

    def __init__(self, sources: Sequence[_Source]) -> None:
        self.sources = list(sources)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self, wait_seconds: int = 0) -> int:
        """One pass over every source; how much it found (0: everything is caught up)."""
        with self._lock:
            return sum(source.poll(wait_seconds) for source in self.sources)

    def drain(self, timeout: float = 30.0, settle: float = 0.0) -> int:
        """Deliver everything pending, until a full pass finds nothing new; returns the work done.

        On moto's server notifications and stream records exist as soon as the write returns, so one
        quiet pass means done. Endpoints that publish them a moment later (LocalStack, AWS) need
        `settle`: the seconds that must pass with nothing new (SQS long polling does the waiting).
        """
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        total = 0
        pause = threading.Event()
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"delivery did not settle within {timeout:.0f} s")
            found = self.poll_once(wait_seconds=1 if settle > 0 else 0)
            total += found
            if found:
                quiet_since = None
                continue
            if settle <= 0:
                return total
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle:
                return total
            pause.wait(0.1)  # a source without long polling (streams) must not spin

    def start_background(self, interval: float = 0.2) -> None:
        """Poll in a daemon thread until `stop_background`."""
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(interval,), name="reimagine-delivery", daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                found = self.poll_once()
            except Exception:
                log.exception("delivery pass failed; retrying")
                found = 0
            if not found:
                self._stop.wait(interval)

    def stop_background(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
            self._thread = None

    def close(self) -> None:
        """Stop polling and let every source's background work finish (queue workers)."""
        self.stop_background()
        for source in self.sources:
            source.close()
