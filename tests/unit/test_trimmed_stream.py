"""A stream mapping whose shard iterator points before what the stream still keeps
(TrimmedDataAccessException, seen on a busy LocalStack) resumes instead of failing the delivery pass."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from reimagine_local.delivery import FailureDestinations, StreamMapping
from reimagine_local.template import Function, StreamTrigger

STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026"


def _record(sequence: str) -> dict[str, Any]:
    return {
        "eventID": sequence,
        "eventName": "MODIFY",
        "dynamodb": {"Keys": {"id": {"S": "a"}}, "SequenceNumber": sequence, "StreamViewType": "NEW_IMAGE"},
    }


class TrimmingStreams:
    """One shard; GetRecords answers `trimmed` times with TrimmedDataAccessException, then one record."""

    def __init__(self, trimmed: int) -> None:
        self.trimmed = trimmed
        self.iterators: list[str] = []

    def describe_stream(self, **_: Any) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "shard-1"}]}}

    def get_shard_iterator(self, *, ShardIteratorType: str, **_: Any) -> dict[str, str]:
        self.iterators.append(ShardIteratorType)
        return {"ShardIterator": ShardIteratorType}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        if self.trimmed:
            self.trimmed -= 1
            error = {"Error": {"Code": "TrimmedDataAccessException", "Message": "read past the oldest record"}}
            raise ClientError(error, "GetRecords")  # type: ignore[arg-type]
        return {"Records": [_record("100")] if ShardIterator != "done" else [], "NextShardIterator": "done"}


class Recording:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def invoke(self, fn: Function, event: dict[str, Any]) -> None:
        self.batches.append([r["dynamodb"]["SequenceNumber"] for r in event["Records"]])


def mapping(streams: TrimmingStreams, invoker: Recording) -> StreamMapping:
    fn = Function("Generate", "stack-generate", "a.b", None, 30, 256, {}, arn="arn:aws:lambda:::function:g")
    return StreamMapping(
        fn,
        StreamTrigger("Captioned", "Table", starting_position="TRIM_HORIZON"),
        STREAM,
        streams,  # type: ignore[arg-type]
        invoker,  # type: ignore[arg-type]
        FailureDestinations(None),  # type: ignore[arg-type]
        "us-east-1",
    )


def test_a_trimmed_iterator_is_renewed_and_the_records_still_kept_are_delivered():
    # Given a shard whose first read says the iterator's position was trimmed
    streams, invoker = TrimmingStreams(trimmed=1), Recording()
    # When the mapping polls
    mapping(streams, invoker).poll()
    # Then it took a new iterator and delivered the record the stream still has
    assert (streams.iterators, invoker.batches) == (["TRIM_HORIZON", "TRIM_HORIZON"], [["100"]])


def test_a_shard_trimmed_again_after_two_renewals_is_an_error():
    streams, invoker = TrimmingStreams(trimmed=3), Recording()
    source = mapping(streams, invoker)
    with pytest.raises(ClientError, match="TrimmedDataAccessException"):
        source.poll()
    assert invoker.batches == []
