"""Delete now: the owner removes the photo, the picture and the personal fields of a request at once.

The record becomes a tombstone first (status DELETED, no address, caption or result key), so no
new link to the pictures is ever handed out, then both objects are deleted. Every call does both
steps, so a call cut short is finished by the next one: deleting twice is fine. Only a finished
request can be deleted (the capability is mailed when it finishes), so no step is still writing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reimagine.errors import ApiError
from reimagine.lifecycle import DELETABLE
from reimagine.models import RequestRecord, Status, result_key, upload_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from reimagine.config import Settings
    from reimagine.records import RequestStore


class NotFinished(ApiError):
    """The request is still being worked on: it can be deleted once it has finished."""

    def __init__(self, request_status: str) -> None:
        self.request_status = request_status
        super().__init__(409, "NOT_FINISHED", "the request is still being worked on; delete it once it has finished")


def delete_request(record: RequestRecord, *, store: RequestStore, s3: S3Client, settings: Settings) -> RequestRecord:
    """Tombstone the record and delete its upload and result; returns the tombstone."""
    if record.status not in DELETABLE:
        raise NotFinished(record.status.value)
    tombstone = record if record.status is Status.DELETED else store.tombstone(record.id)
    if tombstone is None:  # it changed under us: read it again and go by what it is now
        current = store.get(record.id)
        if current is None or current.status is not Status.DELETED:
            raise NotFinished(current.status.value if current else "gone")
        tombstone = current
    # Deleting a key that is not there succeeds: these run on every call, so a retry finishes the job.
    s3.delete_object(Bucket=settings.uploads_bucket, Key=upload_key(record.id))
    s3.delete_object(Bucket=settings.results_bucket, Key=result_key(record.id))
    return tombstone
