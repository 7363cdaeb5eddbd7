"""Lambda event filtering against the examples in AWS's documentation (Lambda > event filtering)."""

from __future__ import annotations

import json

import pytest

from reimagine_emulator.filters import matches, passes

# (pattern, an event that matches, an event that does not) from the documented comparison operators.
DOCUMENTED = [
    ("null", {"UserID": [None]}, {"UserID": None}, {"UserID": "a"}),
    ("empty", {"LastName": [""]}, {"LastName": ""}, {"LastName": "Doe"}),
    ("equals", {"Name": ["Alice"]}, {"Name": "Alice"}, {"Name": "alice"}),
    (
        "equals ignore case",
        {"Name": [{"equals-ignore-case": "alice"}]},
        {"Name": "ALICE"},
        {"Name": "Bob"},
    ),
    (
        "and",
        {"Location": ["New York"], "Day": ["Monday"]},
        {"Location": "New York", "Day": "Monday"},
        {"Location": "New York", "Day": "Tuesday"},
    ),
    ("or", {"PaymentType": ["Credit", "Debit"]}, {"PaymentType": "Debit"}, {"PaymentType": "Cash"}),
    (
        "or across fields",
        {"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]},
        {"Location": "Paris", "Day": "Monday"},
        {"Location": "Paris", "Day": "Friday"},
    ),
    ("not", {"Weather": [{"anything-but": ["Raining"]}]}, {"Weather": "Sunny"}, {"Weather": "Raining"}),
    ("numeric equals", {"Price": [{"numeric": ["=", 100]}]}, {"Price": 100.0}, {"Price": 101}),
    ("numeric range", {"Price": [{"numeric": [">", 10, "<=", 20]}]}, {"Price": 20}, {"Price": 10}),
    ("exists", {"ProductName": [{"exists": True}]}, {"ProductName": "x"}, {"Other": "x"}),
    ("does not exist", {"ProductName": [{"exists": False}]}, {"Other": "x"}, {"ProductName": "x"}),
    ("begins with", {"Region": [{"prefix": "us-"}]}, {"Region": "us-east-1"}, {"Region": "eu-west-1"}),
    ("ends with", {"FileName": [{"suffix": ".png"}]}, {"FileName": "cat.png"}, {"FileName": "cat.jpg"}),
]


@pytest.mark.parametrize(("pattern", "hit", "miss"), [case[1:] for case in DOCUMENTED], ids=[c[0] for c in DOCUMENTED])
def test_documented_operators(pattern, hit, miss):
    assert matches(pattern, hit)
    assert not matches(pattern, miss)


def _stream_record(new_image: dict, event_name: str = "MODIFY") -> dict:
    return {
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "dynamodb": {"Keys": {"id": {"S": "1"}}, "NewImage": new_image},
    }


def test_dynamodb_documented_example_on_keys():
    # Given the documented DynamoDB example filtering on a key attribute
    pattern = {"dynamodb": {"Keys": {"CustomerName": {"S": ["AnyCompany Industries"]}}}}
    record = {"dynamodb": {"Keys": {"CustomerName": {"S": "AnyCompany Industries"}}}}
    # Then it matches that key and nothing else
    assert matches(pattern, record)
    assert not matches(pattern, {"dynamodb": {"Keys": {"CustomerName": {"S": "Other"}}}})


def test_event_name_filter():
    assert passes(_stream_record({}, "INSERT"), ['{"eventName": ["INSERT"]}'])
    assert not passes(_stream_record({}, "REMOVE"), ['{"eventName": ["INSERT"]}'])


def test_generate_filter_of_the_template():
    # Given GenerateFunction's filter: the new status is CAPTIONED
    pattern = '{"dynamodb": {"NewImage": {"status": {"S": ["CAPTIONED"]}}}}'
    assert passes(_stream_record({"status": {"S": "CAPTIONED"}}), [pattern])
    assert not passes(_stream_record({"status": {"S": "CAPTIONING"}}), [pattern])
    # A REMOVE has no NewImage at all
    assert not passes({"eventName": "REMOVE", "dynamodb": {"OldImage": {"status": {"S": "CAPTIONED"}}}}, [pattern])


def test_notify_filter_of_the_template():
    # Given NotifyFunction's filter: finished and not yet notified
    pattern = json.dumps(
        {
            "dynamodb": {
                "NewImage": {
                    "status": {"S": ["COMPLETED", "FAILED"]},
                    "notified_at": {"S": [{"exists": False}]},
                }
            }
        }
    )
    assert passes(_stream_record({"status": {"S": "COMPLETED"}}), [pattern])
    assert passes(_stream_record({"status": {"S": "FAILED"}}), [pattern])
    notified = {"status": {"S": "COMPLETED"}, "notified_at": {"S": "2024-01-01T00:00:00Z"}}
    assert not passes(_stream_record(notified), [pattern])
    assert not passes(_stream_record({"status": {"S": "GENERATING"}}), [pattern])


def test_any_filter_passes_and_no_filter_passes_all():
    record = _stream_record({"status": {"S": "FAILED"}})
    assert passes(record, ['{"eventName": ["INSERT"]}', '{"dynamodb": {"NewImage": {"status": {"S": ["FAILED"]}}}}'])
    assert not passes(record, ['{"eventName": ["INSERT"]}'])
    assert passes(record, [])


def test_values_in_lists_match_any_element():
    assert matches({"tags": ["blue"]}, {"tags": ["red", "blue"]})
    assert not matches({"tags": ["green"]}, {"tags": ["red", "blue"]})


def test_type_sensitive_equality_and_numeric_only_on_numbers():
    assert not matches({"n": ["5"]}, {"n": 5})
    assert not matches({"n": [{"numeric": [">", 1]}]}, {"n": "5"})
    assert not matches({"flag": [True]}, {"flag": 1})


def test_anything_but_variants_and_missing_field():
    assert matches({"s": [{"anything-but": {"prefix": "tmp/"}}]}, {"s": "uploads/a"})
    assert not matches({"s": [{"anything-but": {"prefix": "tmp/"}}]}, {"s": "tmp/a"})
    assert not matches({"s": [{"anything-but": "x"}]}, {})  # anything-but needs the field present
    assert matches({"s": [{"prefix": {"equals-ignore-case": "US-"}}]}, {"s": "us-east-1"})


def test_malformed_patterns_are_rejected():
    with pytest.raises(ValueError):
        matches({"a": "not a list"}, {"a": "x"})
    with pytest.raises(ValueError):
        matches({"a": [{"wildcard-ish": 1}]}, {"a": "x"})
