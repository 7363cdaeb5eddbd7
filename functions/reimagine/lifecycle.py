"""A request's life in one place: its statuses, the moves between them, and what hands it to each step.

    PENDING_UPLOAD -> CAPTIONING -> CAPTIONED -> GENERATING -> COMPLETED -> DELETED
    CAPTIONING -> AWAITING_CONFIRMATION -> PENDING_UPLOAD   (the address is confirmed first)
    CAPTIONING -> PENDING_UPLOAD, GENERATING -> CAPTIONED   (a claim given back, to be tried again)
    any status not final -> FAILED -> DELETED

A record moves only by a conditional write (reimagine.records) from the status it is expected to be
in; MOVES lists every such move the code makes. The template's triggers start the steps: the table's
stream readers filter on the statuses TRIGGERS names here, and tests/infrastructure/test_lifecycle.py
checks template.yaml against them, so the template and the code cannot drift apart unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PENDING_UPLOAD = "PENDING_UPLOAD"
    # The upload is valid and the address has not confirmed yet: nothing is spent until it does.
    AWAITING_CONFIRMATION = "AWAITING_CONFIRMATION"
    CAPTIONING = "CAPTIONING"
    CAPTIONED = "CAPTIONED"
    GENERATING = "GENERATING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    # The owner deleted it: the pictures are gone and the record is a tombstone without personal data.
    DELETED = "DELETED"

    @property
    def is_final(self) -> bool:
        return self in FINAL


FINAL = (Status.COMPLETED, Status.FAILED, Status.DELETED)
NON_FINAL = tuple(s for s in Status if s not in FINAL)
# Finished with an answer for the owner: the one email goes out, and the owner may delete it.
FINISHED = (Status.COMPLETED, Status.FAILED)
DELETABLE = (*FINISHED, Status.DELETED)
# Between an upload and its picture: a step holds it, or its event is on the way. The sweeper re-drives
# or ends those left too long (PENDING_UPLOAD is not swept: a photo that never came simply expires).
SWEPT = (Status.CAPTIONING, Status.CAPTIONED, Status.GENERATING)


@dataclass(frozen=True)
class Step:
    """A step's moves: it claims records in `waiting`, holds them in `working`, ends them in `done`
    (or gives them back to `waiting` when a retry may succeed)."""

    waiting: Status
    working: Status
    done: Status
    not_waiting: str  # why a record in any other state is skipped


CAPTION = Step(Status.PENDING_UPLOAD, Status.CAPTIONING, Status.CAPTIONED, "not waiting for an upload")
GENERATE = Step(Status.CAPTIONED, Status.GENERATING, Status.COMPLETED, "not waiting for generation")


@dataclass(frozen=True)
class Move:
    """One allowed change of status, and who makes it."""

    source: Status
    target: Status
    by: str


MOVES = (
    Move(Status.PENDING_UPLOAD, Status.CAPTIONING, "caption: claims the upload"),
    Move(Status.CAPTIONING, Status.CAPTIONED, "caption: stores the caption"),
    Move(Status.CAPTIONING, Status.PENDING_UPLOAD, "caption: gives its claim back, to be tried again"),
    Move(Status.CAPTIONING, Status.AWAITING_CONFIRMATION, "caption: holds it until the address is confirmed"),
    Move(Status.AWAITING_CONFIRMATION, Status.PENDING_UPLOAD, "the confirm link: resumes it"),
    Move(Status.CAPTIONED, Status.GENERATING, "generate: claims the caption"),
    Move(Status.GENERATING, Status.COMPLETED, "generate: stores the picture"),
    Move(Status.GENERATING, Status.CAPTIONED, "generate gives its claim back; the sweeper re-drives a dead worker"),
    *(Move(status, Status.FAILED, "a step or the sweeper: ends it") for status in NON_FINAL),
    *(Move(status, Status.DELETED, "the owner: deletes it now") for status in FINISHED),
)


def allowed(source: Status, target: Status) -> bool:
    """Whether a record may go from `source` to `target` (staying put, a touch or a claim renewed, is
    not a move)."""
    return any(move.source is source and move.target is target for move in MOVES)


@dataclass(frozen=True)
class Trigger:
    """What hands records to a function: a resource of template.yaml, and the statuses it lets through.

    `stream_filter`: the trigger reads the table's stream and its FilterCriteria selects exactly these
    statuses of the new image. Otherwise the function itself picks the statuses (by its claim, or by
    reading the table's status index)."""

    resource: str
    statuses: tuple[Status, ...]
    stream_filter: bool
    how: str


TRIGGERS = (
    Trigger(
        "CaptionFunction",
        (CAPTION.waiting,),
        stream_filter=False,
        how="S3 ObjectCreated on uploads/; its claim takes PENDING_UPLOAD only",
    ),
    Trigger(
        "GeneratePipe",
        (GENERATE.waiting,),
        stream_filter=True,
        how="the table's stream -> GenerateQueue -> GenerateFunction",
    ),
    Trigger(
        "NotifyFunction",
        FINISHED,
        stream_filter=True,
        how="the table's stream, for records neither notified, refused nor claimed yet",
    ),
    Trigger(
        "SweeperFunction",
        (*SWEPT, Status.AWAITING_CONFIRMATION, *FINISHED),
        stream_filter=False,
        how="a schedule; reads the status index for what sat too long",
    ),
)


class Divert(Exception):
    """Raised by a step's work to end the claim in `to` instead of the step's `done` (e.g. a request that
    must wait for its address to be confirmed); `fields` are set with it."""

    def __init__(self, to: Status, detail: str, **fields: Any) -> None:
        super().__init__(detail)
        self.to, self.detail, self.fields = to, detail, fields
