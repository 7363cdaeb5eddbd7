"""Delete now (issue 21, item 3): only the email's key deletes; photo, picture and personal fields go at once."""

from __future__ import annotations

import re

import pytest

from reimagine import clients
from reimagine.models import Status
from reimagine.steps.notify import notify_user
from tests.fixtures.api_calls import call, finished_request, key_for, objects


def _delete(request_id: str, key: str | None):
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    return call("DELETE", f"/requests/{request_id}", headers=headers)


def test_the_emails_key_deletes_the_photo_the_picture_and_the_personal_fields(aws) -> None:
    # Given a completed request
    record = finished_request(aws)
    # When its owner deletes it with the key from the email
    response = _delete(record.id, key_for(aws, record.id))
    # Then both objects are gone and the record is a tombstone with no address, caption or picture key
    stored = clients.store().get(record.id)
    assert (
        response.status,
        objects(aws, record.id),
        stored.status,
        stored.email,
        stored.caption,
        stored.result_key,
    ) == (
        200,
        [],
        Status.DELETED,
        "",
        None,
        None,
    )


def test_get_says_deleted_afterwards(aws) -> None:
    record = finished_request(aws)
    _delete(record.id, key_for(aws, record.id))
    view = call("GET", f"/requests/{record.id}").json()
    assert view == {
        "id": record.id,
        "status": "DELETED",
        "created_at": view["created_at"],
        "updated_at": view["updated_at"],
        "notified_at": view["notified_at"],
    }


@pytest.mark.parametrize("key", [None, "", "not-the-key", "Zm9v" * 11], ids=["missing", "empty", "wrong", "forged"])
def test_a_missing_or_wrong_key_is_refused_and_deletes_nothing(aws, key) -> None:
    record = finished_request(aws)
    response = _delete(record.id, key)
    assert (response.status, response.json()["error"]["code"], len(objects(aws, record.id))) == (
        403,
        "DELETE_KEY_REQUIRED",
        2,
    )


def test_another_requests_key_does_not_delete_this_one(aws) -> None:
    mine, theirs = finished_request(aws), finished_request(aws, email="someone@example.com")
    response = _delete(theirs.id, key_for(aws, mine.id))
    assert (response.status, clients.store().get(theirs.id).status) == (403, Status.COMPLETED)


def test_the_request_id_alone_is_not_the_key(aws) -> None:
    record = finished_request(aws)
    assert _delete(record.id, record.id).status == 403


def test_deleting_twice_is_fine(aws) -> None:
    record = finished_request(aws)
    key = key_for(aws, record.id)
    first, second = _delete(record.id, key), _delete(record.id, key)
    assert (first.status, second.status, second.json()["status"]) == (200, 200, "DELETED")


def test_no_other_request_is_touched(aws) -> None:
    # Given two finished requests
    mine, other = finished_request(aws), finished_request(aws, email="someone@example.com")
    before = clients.store().get(other.id)
    # When one is deleted
    _delete(mine.id, key_for(aws, mine.id))
    # Then the other's record and objects are as they were
    assert (clients.store().get(other.id), len(objects(aws, other.id))) == (before, 2)


def test_a_failed_request_can_be_deleted_too(aws) -> None:
    record = finished_request(aws, status=Status.FAILED)
    response = _delete(record.id, key_for(aws, record.id))
    assert (response.status, objects(aws, record.id), clients.store().get(record.id).error) == (200, [], None)


def test_a_request_still_at_work_is_not_deleted(aws) -> None:
    created = call("POST", "/requests", body={"email": "a@example.com", "content_type": "image/png"}).json()
    response = _delete(created["id"], key_for(aws, created["id"]))
    assert (response.status, response.json()["error"]["code"]) == (409, "NOT_FINISHED")


def test_an_unknown_id_is_404(aws) -> None:
    rid = "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f"
    assert _delete(rid, key_for(aws, rid)).status == 404


def test_the_emails_result_page_link_carries_the_key_that_deletes(aws) -> None:
    # Given a completed request, not yet notified
    record = finished_request(aws, notified=False)
    # When Notify sends its email
    notify_user(record.id, store=clients.store(), s3=clients.s3(), ses=clients.ses(), settings=aws)
    # Then the email's result page link carries, in its fragment, a key that deletes the request
    text = _sent_texts()[0]
    page = re.search(rf"{re.escape(aws.api_base_url)}/results/{record.id}#key=([A-Za-z0-9_-]+)", text)
    assert _delete(record.id, page.group(1)).status == 200


def _sent_texts() -> list[str]:
    """The plain-text part of each email sent (raw MIME, as SendRawEmail takes it)."""
    from email import message_from_string, policy

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    texts = []
    for message in ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages:
        body = message_from_string(message.raw_data, policy=policy.default).get_body(preferencelist=("plain",))
        texts.append(body.get_content() if body else "")
    return texts


def test_the_programs_result_link_says_the_pictures_were_deleted(aws) -> None:
    record = finished_request(aws)
    _delete(record.id, key_for(aws, record.id))
    error = call("GET", f"/requests/{record.id}/result").json()["error"]
    assert (error["code"], error["message"]) == (
        "RESULT_NOT_READY",
        "the pictures were deleted at their owner's request",
    )
