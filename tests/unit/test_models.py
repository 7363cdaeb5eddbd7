"""The request's identity and the API bodies: ids, keys, masking, validation."""

import pytest
from pydantic import ValidationError

from reimagine.models import (
    Status,
    is_request_id,
    mask_email,
    new_request_id,
    request_id_from_upload_key,
    result_key,
    upload_key,
)
from reimagine.request_body import CreateRequestBody


def test_ids_are_random_uuid4_and_keys_derive_from_them_only():
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    some = next(iter(ids))
    assert is_request_id(some)
    assert upload_key(some) == f"uploads/{some}"
    assert result_key(some) == f"results/{some}.png"
    assert request_id_from_upload_key(upload_key(some)) == some


@pytest.mark.parametrize(
    "key",
    [
        "uploads/../secrets",
        "uploads/not-an-id",
        "results/3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f",
        "uploads/",
        "",
    ],
)
def test_keys_that_are_not_our_uploads_have_no_request_id(key):
    assert request_id_from_upload_key(key) is None


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("jane.doe@example.com", "j***@e***.com"),
        ("a@b.co.uk", "a***@b***.uk"),
        ("x@localhost", "x***@l***"),
    ],
)
def test_masked_email_hides_all_but_first_letters(email, masked):
    assert mask_email(email) == masked


def test_create_body_accepts_a_valid_request_and_normalises_the_domain():
    body = CreateRequestBody(email="Jane@Example.COM", content_type="image/jpeg", size=1234)
    assert body.email == "Jane@example.com"


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "not-an-email", "content_type": "image/jpeg"},
        {"email": "a@example.com", "content_type": "text/html"},
        {"email": "a@example.com", "content_type": "image/jpeg", "size": 0},
        {"email": "a@example.com", "content_type": "image/jpeg", "path": "../x"},
        {"content_type": "image/jpeg"},
    ],
)
def test_create_body_rejects_bad_input(payload):
    with pytest.raises(ValidationError):
        CreateRequestBody.model_validate(payload)


def test_final_states():
    assert {s for s in Status if s.is_final} == {Status.COMPLETED, Status.FAILED, Status.DELETED}
