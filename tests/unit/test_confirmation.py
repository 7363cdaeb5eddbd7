"""Double opt-in (reimagine.confirmation): the mailbox's state, its tokens, its mail budget, its unsubscribe link.

Each test runs against moto's DynamoDB with a clock the test moves; the whole flow through the
functions is tests/integration/test_confirmation.py.
"""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from reimagine import clients, mail
from reimagine.confirmation import (
    COOLDOWN,
    Confirmations,
    Mailer,
    MailLinks,
    confirmation_digest,
    token_hash,
    unsubscribe_token,
    unsubscribed_digest,
)
from reimagine.models import Status
from reimagine.request_body import CreateRequestBody
from reimagine.steps import api as api_steps
from reimagine.suppression import SuppressionList, mailbox_digest
from tests.fixtures import images
from tests.fixtures.clocks import DateClock
from tests.fixtures.steps_on_moto import run_caption

KEY = b"a-test-key"
ADDRESS = "Jane.Doe+photos@gmail.com"
SAME_MAILBOX = "janedoe@googlemail.com"
RID = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"


@pytest.fixture
def clock() -> DateClock:
    return DateClock(datetime(2026, 12, 7, 9, 0, tzinfo=UTC))


@pytest.fixture
def confirmations(aws, clock: DateClock) -> Confirmations:
    return Confirmations(clients.dynamodb(), aws.table_name, key=KEY, confirmed_for_days=180, link_days=1, clock=clock)


def _items(aws) -> list[dict]:
    return boto3.client("dynamodb").scan(TableName=aws.table_name)["Items"]


# ---------------------------------------------------------------- what is stored


def test_the_table_holds_keyed_hashes_never_the_address_or_the_token(aws, confirmations: Confirmations) -> None:
    # Given a request that waited and a token issued for its mailbox
    confirmations.wait_for(ADDRESS, RID)
    token = confirmations.new_token(ADDRESS)
    # Then no stored byte is the address, its mailbox or the token
    stored = json.dumps(_items(aws))
    for secret in (ADDRESS, "janedoe@gmail.com", "janedoe", token):
        assert secret not in stored
    # And the items are keyed by the mailbox's HMAC and the token's hash
    assert {item["id"]["S"] for item in _items(aws)} == {
        f"confirm#{confirmation_digest(ADDRESS, KEY)}",
        f"confirm-token#{token_hash(token)}",
    }


def test_every_spelling_of_a_mailbox_is_one_confirmation_state() -> None:
    assert confirmation_digest(ADDRESS, KEY) == confirmation_digest(SAME_MAILBOX, KEY)
    assert confirmation_digest(ADDRESS, KEY) != confirmation_digest(ADDRESS, b"another deployment")


# ---------------------------------------------------------------- tokens


def test_a_token_confirms_once_and_hands_back_every_waiting_request(confirmations: Confirmations) -> None:
    assert confirmations.wait_for(ADDRESS, RID)
    assert confirmations.wait_for(SAME_MAILBOX, "second-id")
    token = confirmations.new_token(ADDRESS)
    done = confirmations.confirm(token)
    assert (done.verdict, done.waiting) == ("confirmed", sorted([RID, "second-id"]))
    assert confirmations.is_confirmed(SAME_MAILBOX)


def test_a_used_token_is_refused_as_used(confirmations: Confirmations) -> None:
    token = confirmations.new_token(ADDRESS)
    confirmations.confirm(token)
    assert (confirmations.check(token), confirmations.confirm(token).verdict) == ("used", "used")


def test_a_token_past_the_confirmation_window_is_refused_as_expired_and_confirms_nothing(
    confirmations: Confirmations, clock: DateClock
) -> None:
    token = confirmations.new_token(ADDRESS)
    clock.now += timedelta(days=1, seconds=1)
    assert (confirmations.check(token), confirmations.confirm(token).verdict) == ("expired", "expired")
    assert not confirmations.is_confirmed(ADDRESS)


def test_a_token_never_issued_is_unknown(confirmations: Confirmations) -> None:
    assert confirmations.confirm("made-up").verdict == "unknown"


def test_checking_a_token_confirms_nothing(confirmations: Confirmations) -> None:
    token = confirmations.new_token(ADDRESS)
    assert confirmations.check(token) == "confirmed"
    assert not confirmations.is_confirmed(ADDRESS)


def test_confirmation_lapses_after_confirmed_for_days(confirmations: Confirmations, clock: DateClock) -> None:
    confirmations.confirm(confirmations.new_token(ADDRESS))
    clock.now += timedelta(days=180, seconds=1)
    assert confirmations.wait_for(ADDRESS, RID)


def test_a_request_of_a_confirmed_mailbox_does_not_wait(confirmations: Confirmations) -> None:
    confirmations.confirm(confirmations.new_token(ADDRESS))
    assert confirmations.wait_for(SAME_MAILBOX, RID) is False


# ---------------------------------------------------------------- how much confirmation mail


def test_one_mail_per_cooldown_and_three_a_day_per_mailbox(confirmations: Confirmations, clock: DateClock) -> None:
    # Given requests for one mailbox (two spellings of it) every five minutes through one UTC day
    clock.now = datetime(2026, 12, 7, tzinfo=UTC)
    sent: list[bool] = []
    for _ in range(24 * 12):
        sent.append(confirmations.reserve_mail(ADDRESS if len(sent) % 2 else SAME_MAILBOX))
        clock.now += timedelta(minutes=5)
    # Then three mails went out that day, the second one cooldown after the first
    assert sum(sent) == 3
    assert sent.index(True, 1) * timedelta(minutes=5) == COOLDOWN


def test_a_mail_that_did_not_go_out_gives_its_slot_back(confirmations: Confirmations) -> None:
    assert confirmations.reserve_mail(ADDRESS)
    confirmations.give_back_mail(ADDRESS)
    assert confirmations.reserve_mail(ADDRESS)


# ---------------------------------------------------------------- unsubscribe links


def test_an_unsubscribe_token_stands_for_the_mailbox_suppression_digest() -> None:
    token = unsubscribe_token(ADDRESS, KEY)
    assert unsubscribed_digest(token, KEY) == mailbox_digest(SAME_MAILBOX, KEY)
    assert "jane" not in token.lower()


@pytest.mark.parametrize(
    "forged",
    [
        f"{mailbox_digest('victim@example.com', KEY)}.{'0' * 32}",  # another mailbox, a guessed signature
        unsubscribe_token(ADDRESS, b"another deployment"),
        "not-a-token",
    ],
)
def test_a_forged_unsubscribe_token_names_no_mailbox(forged: str) -> None:
    assert unsubscribed_digest(forged, KEY) is None


def test_unsubscribing_suppresses_every_spelling_of_the_mailbox(aws) -> None:
    suppressions = SuppressionList(clients.dynamodb(), aws.table_name, key=KEY)
    digest = unsubscribed_digest(unsubscribe_token(ADDRESS, KEY), KEY)
    assert digest is not None
    suppressions.unsubscribe(digest, at=datetime.now(UTC))
    assert suppressions.is_suppressed(SAME_MAILBOX)


# ---------------------------------------------------------------- the mail itself


def test_every_mail_carries_rfc_8058_one_click_unsubscribe_and_a_visible_footer() -> None:
    # Given a confirmation mail as sent, with its unsubscribe link
    links = MailLinks("https://api.example.com", KEY)
    url = links.unsubscribe(ADDRESS)
    raw = mail.mime(
        sender="reimagine@example.com",
        to=ADDRESS,
        message=mail.confirmation(links.confirm("t0ken")),
        unsubscribe_url=url,
    )
    message = email.message_from_bytes(raw, policy=email.policy.default)
    # Then its headers offer one-click unsubscribe, and both bodies show the way out
    assert (message["List-Unsubscribe"], message["List-Unsubscribe-Post"]) == (
        f"<{url}>",
        "List-Unsubscribe=One-Click",
    )
    assert url in message.get_body(preferencelist=("plain",)).get_content()
    assert "Don't email me again" in message.get_body(preferencelist=("html",)).get_content()


def test_the_confirmation_mail_is_generic() -> None:
    message = mail.confirmation("https://api.example.com/confirm/t0ken")
    assert message.subject == "Confirm your address for reimagine"
    assert "https://api.example.com/confirm/t0ken" in message.text
    assert "ignore this email: you will get no further mail from us" in message.text


# ---------------------------------------------------------------- the caption step's gate


class CountingCaptioner:
    name = "fake"
    model = "fake-vision-1"

    def __init__(self) -> None:
        self.calls = 0

    def caption(self, image, deadline) -> str:
        self.calls += 1
        return "A red rectangle."


def _uploaded(settings, address: str) -> str:
    body = CreateRequestBody(email=address, content_type="image/jpeg")
    request_id = api_steps.create_request(body, store=clients.store(), s3=clients.s3(), settings=settings).id
    data = images.jpeg((64, 48))
    clients.s3().put_object(Bucket=settings.uploads_bucket, Key=f"uploads/{request_id}", Body=data)
    return request_id


def _caption(settings, request_id: str, confirmations: Confirmations, captioner: CountingCaptioner):
    mailer = Mailer(clients.ses(), settings.sender_email, "", MailLinks("https://api.example.com", KEY))
    return run_caption(settings, request_id, captioner, confirmations=confirmations, mailer=mailer)


def _sent() -> int:
    return int(boto3.client("ses").get_send_quota()["SentLast24Hours"])


def test_an_unconfirmed_mailbox_waits_before_any_provider_is_called(aws, confirmations: Confirmations) -> None:
    # Given two valid uploads for one mailbox that never confirmed
    captioner = CountingCaptioner()
    first, second = _uploaded(aws, ADDRESS), _uploaded(aws, SAME_MAILBOX)
    # When the caption step takes both
    outcomes = [_caption(aws, rid, confirmations, captioner).outcome for rid in (first, second)]
    # Then both wait, the provider was never called, and one confirmation mail went out
    assert outcomes == ["diverted", "diverted"]
    assert [clients.store().get(rid).status for rid in (first, second)] == [Status.AWAITING_CONFIRMATION] * 2
    assert (captioner.calls, _sent()) == (0, 1)


def test_a_confirmed_mailbox_is_captioned_at_once(aws, confirmations: Confirmations) -> None:
    captioner = CountingCaptioner()
    confirmations.confirm(confirmations.new_token(ADDRESS))
    request_id = _uploaded(aws, SAME_MAILBOX)
    assert _caption(aws, request_id, confirmations, captioner).outcome == "done"
    assert (captioner.calls, _sent()) == (1, 0)
