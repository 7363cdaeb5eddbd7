"""The state machine (reimagine.lifecycle) is the one the code runs: every move a step or the sweeper
makes is one it allows, and each trigger hands a step the status that step claims from.
(That the template's filters agree with it: tests/infrastructure/test_lifecycle.py.)"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from reimagine.lifecycle import (
    CAPTION,
    FINAL,
    FINISHED,
    GENERATE,
    MOVES,
    SWEPT,
    TRIGGERS,
    Status,
    Step,
    allowed,
)
from reimagine.records import StuckCandidate
from reimagine.steps.sweeper import Action, decide, sweep

STEPS = {"caption": CAPTION, "generate": GENERATE}
TRIGGERED = {t.resource: t.statuses for t in TRIGGERS}


@pytest.mark.parametrize("step", STEPS.values(), ids=list(STEPS))
def test_a_step_claims_finishes_and_gives_back_by_allowed_moves(step: Step) -> None:
    assert [
        allowed(step.waiting, step.working),
        allowed(step.working, step.done),
        allowed(step.working, step.waiting),
    ] == [True, True, True]


def test_a_caption_may_wait_for_its_address_and_resume() -> None:
    # The caption step's Divert, and the confirm link's resume (reimagine.confirmation)
    assert [
        allowed(CAPTION.working, Status.AWAITING_CONFIRMATION),
        allowed(Status.AWAITING_CONFIRMATION, CAPTION.waiting),
    ] == [True, True]


def test_only_deletion_leaves_a_final_status() -> None:
    assert {(m.source, m.target) for m in MOVES if m.source in FINAL} == {
        (Status.COMPLETED, Status.DELETED),
        (Status.FAILED, Status.DELETED),
    }


def test_every_status_but_a_final_one_may_end_failed() -> None:
    assert [s for s in Status if allowed(s, Status.FAILED)] == [s for s in Status if not s.is_final]


def test_the_trigger_of_each_step_hands_it_what_it_claims() -> None:
    assert [TRIGGERED["CaptionFunction"], TRIGGERED["GeneratePipe"], TRIGGERED["NotifyFunction"]] == [
        (CAPTION.waiting,),
        (GENERATE.waiting,),
        FINISHED,
    ]


def _candidate(status: Status) -> StuckCandidate:
    return StuckCandidate(id="r", status=status, updated_at="2026-01-01T00:00:00.000Z")


@pytest.mark.parametrize("status", SWEPT, ids=[s.value for s in SWEPT])
def test_the_sweeper_re_drives_by_an_allowed_move_or_a_touch(status: Status) -> None:
    # Given a stuck request no worker holds, When the sweeper decides, Then it re-drives it where it may go
    decision = decide(_candidate(status), now_epoch=1, max_redrives=3)
    assert decision.action is Action.REDRIVE and decision.to is not None
    assert decision.to is status or allowed(status, decision.to)


class _ReadsRecorded:
    """A store with nothing stuck, that records which statuses the sweeper asks for."""

    def __init__(self) -> None:
        self.asked: list[Status] = []

    def stuck(self, status: Status, **_: Any) -> list[StuckCandidate]:
        self.asked.append(status)
        return []

    def unnotified(self, status: Status, **_: Any) -> list[StuckCandidate]:
        self.asked.append(status)
        return []


def test_the_sweeper_reads_exactly_the_statuses_its_trigger_names() -> None:
    # Given an empty table
    store = _ReadsRecorded()
    # When the sweeper makes a pass, unconfirmed requests included
    sweep(
        store,
        now=datetime(2026, 1, 1, tzinfo=UTC),
        stuck_after_seconds=60,
        max_redrives=3,
        max_items=100,
        reannounce=lambda _: None,
        unconfirmed_after_seconds=3600,
    )
    # Then it read the statuses the state machine says the sweeper looks at, each once
    assert sorted(store.asked) == sorted(TRIGGERED["SweeperFunction"])
