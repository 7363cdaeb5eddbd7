"""Properties of the domain that must hold for every input, not just the examples we thought of.

Derandomized and bounded: the same examples every run, in well under a second each.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import EmailStr, Field, TypeAdapter, ValidationError

from reimagine import records
from reimagine.models import (
    ALLOWED_CONTENT_TYPES,
    ErrorInfo,
    RequestRecord,
    Status,
    mask_email,
    request_id_from_upload_key,
    upload_key,
)
from reimagine.request_body import CreateRequestBody

PROPERTIES = settings(max_examples=100, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- mask_email -----------------------------------------------------------------------------------


def _parts(address: str) -> tuple[str, str, str]:
    local, _, domain = address.rpartition("@")
    host, _, tld = domain.rpartition(".")
    return local, host, tld


@PROPERTIES
@given(st.emails())
def test_a_masked_address_shows_only_the_first_letters_and_the_tld(address: str) -> None:
    local, host, tld = _parts(address)
    assert mask_email(address) == f"{local[0]}***@{host[0]}***.{tld}"


@PROPERTIES
@given(st.emails(), st.emails())
def test_addresses_that_share_first_letters_and_tld_are_indistinguishable_once_masked(a: str, b: str) -> None:
    # Whatever else differs between two addresses (the rest of the local part, the rest of the
    # domain), the masks are equal when these three agree: nothing else can leak through.
    a_local, a_host, a_tld = _parts(a)
    b_local, b_host, _ = _parts(b)
    twin = f"{a_local[0]}{b_local[1:]}@{a_host[0]}{b_host[1:]}.{a_tld}"
    assert mask_email(twin) == mask_email(a)


# ---- request_id_from_upload_key -------------------------------------------------------------------


def _exact_upload_id(key: str) -> str | None:
    """The oracle: `uploads/` followed by a canonical (lower-case, hyphenated) version-4 UUID, nothing else."""
    prefix = "uploads/"
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix) :]
    try:
        parsed = uuid.UUID(rest)
    except ValueError:
        return None
    return rest if str(parsed) == rest and parsed.version == 4 else None


_uuid4_text = st.uuids(version=4).map(str)
_near_misses = st.one_of(
    st.text(),
    st.text().map(lambda rest: f"uploads/{rest}"),
    _uuid4_text,  # no prefix
    _uuid4_text.map(lambda rid: f"uploads/{rid.upper()}"),
    _uuid4_text.map(lambda rid: f"uploads/{rid.replace('-', '')}"),
    st.uuids(version=1).map(lambda rid: f"uploads/{rid}"),
    st.tuples(_uuid4_text, st.sampled_from(["/", "\n", " ", "x", ".png", "%00", "/../x"])).map(
        lambda pair: f"uploads/{pair[0]}{pair[1]}"
    ),
    st.tuples(st.sampled_from(["/", "./", " ", "\n", "results/", "Uploads/", "uploads/"]), _uuid4_text).map(
        lambda pair: f"{pair[0]}uploads/{pair[1]}"
    ),
    st.tuples(_uuid4_text, st.sampled_from(["uploads//", "uploads\\", "upload/", "uploads/ "])).map(
        lambda pair: f"{pair[1]}{pair[0]}"
    ),
)


@PROPERTIES
@given(_uuid4_text)
def test_the_key_of_an_upload_gives_back_its_id(request_id: str) -> None:
    assert request_id_from_upload_key(upload_key(request_id)) == request_id


@PROPERTIES
@given(_near_misses)
def test_any_other_key_gives_no_id(key: str) -> None:
    assert request_id_from_upload_key(key) == _exact_upload_id(key)


# ---- CreateRequestBody ----------------------------------------------------------------------------

_email_alone = TypeAdapter(Annotated[EmailStr, Field(max_length=254)])


def _email_ok(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        _email_alone.validate_python(value.strip())
    except ValidationError:
        return False
    return True


_bodies = st.fixed_dictionaries(
    {
        "email": st.one_of(
            st.emails(),
            st.emails().map(lambda e: f"  {e.upper()} "),
            st.text(max_size=40),
            st.none(),
            st.integers(),
        ),
        "content_type": st.one_of(st.sampled_from(ALLOWED_CONTENT_TYPES), st.text(max_size=20), st.none()),
    },
    optional={
        "size": st.one_of(st.none(), st.integers(min_value=-5, max_value=10**12), st.text("abc", min_size=1)),
        "extra": st.text(max_size=5),
    },
)


@PROPERTIES
@given(_bodies)
def test_a_body_is_accepted_exactly_when_every_field_is(body: dict[str, Any]) -> None:
    size = body.get("size")
    expected = (
        _email_ok(body["email"])
        and body["content_type"] in ALLOWED_CONTENT_TYPES
        and (size is None or (isinstance(size, int) and size > 0))
        and "extra" not in body
    )
    try:
        parsed = CreateRequestBody.model_validate(body)
    except ValidationError:
        assert not expected
        return
    assert expected
    # Normalising is done once: what was accepted is accepted again unchanged, also as JSON.
    assert CreateRequestBody.model_validate(parsed.model_dump()) == parsed
    assert CreateRequestBody.model_validate_json(parsed.model_dump_json()) == parsed
    domain = str(parsed.email).rpartition("@")[2]
    assert domain == domain.lower() and parsed.email == parsed.email.strip()


@PROPERTIES
@given(st.emails())
def test_the_same_address_in_another_case_or_padding_is_the_same_address(address: str) -> None:
    local, _, domain = address.rpartition("@")
    plain = CreateRequestBody(email=address, content_type="image/png")
    shouted = CreateRequestBody.model_validate({"email": f" {local}@{domain.upper()} ", "content_type": "image/png"})
    assert plain.email == shouted.email


# ---- RequestRecord through DynamoDB's item format -------------------------------------------------

_moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
    lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000)
)  # stored to the millisecond
_counts = st.integers(min_value=0, max_value=2**53)
_records = st.builds(
    RequestRecord,
    id=_uuid4_text,
    status=st.sampled_from(Status),
    email=st.emails(),
    content_type=st.sampled_from(ALLOWED_CONTENT_TYPES),
    declared_size=st.none() | st.integers(min_value=1, max_value=10**10),
    caption=st.none() | st.text(),
    caption_provider=st.none() | st.sampled_from(["offline", "huggingface", "bedrock"]),
    result_key=st.none() | _uuid4_text.map(lambda rid: f"results/{rid}.png"),
    error=st.none() | st.builds(ErrorInfo, code=st.text(min_size=1, max_size=30), message=st.text()),
    created_at=_moments,
    updated_at=_moments,
    notified_at=st.none() | _moments,
    expires_at=_counts,
    attempts=st.integers(min_value=0, max_value=100),
    lease_until=st.none() | _counts,
)


@PROPERTIES
@given(_records)
def test_a_record_round_trips_through_a_dynamodb_item(record: RequestRecord) -> None:
    item = records.to_item(record)
    assert all(len(value) == 1 for value in item.values())  # every attribute is one typed value
    assert not any("NULL" in value for value in item.values())  # absent fields are left out, not NULL
    assert records.from_item(item) == record


@PROPERTIES
@given(_records, st.integers(min_value=1, max_value=10**6))
def test_item_timestamps_sort_as_the_moments_do(record: RequestRecord, later_ms: int) -> None:
    # The sweeper's index compares updated_at as strings: the text must order like the time.
    later = record.model_copy(update={"updated_at": record.updated_at + timedelta(milliseconds=later_ms)})
    assert records.to_item(record)["updated_at"]["S"] < records.to_item(later)["updated_at"]["S"]
