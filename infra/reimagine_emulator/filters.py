"""Lambda event filtering (FilterCriteria): the pattern syntax AWS documents for event source mappings.

A pattern is a JSON object mirroring the event; its leaves are lists of matchers, and a leaf matches
when any matcher matches the event's value (or any element of it, when the value is a list). All keys
of an object must match (AND); `$or` takes a list of sub-patterns. A record passes a FilterCriteria
when ANY of its filters matches; with no filters every record passes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

_MISSING = object()


def passes(record: Mapping[str, Any], patterns: Iterable[Mapping[str, Any] | str]) -> bool:
    """Whether Lambda would deliver `record` under these filter patterns (OR across filters)."""
    parsed = [json.loads(p) if isinstance(p, str) else p for p in patterns]
    return not parsed or any(matches(pattern, record) for pattern in parsed)


def matches(pattern: Mapping[str, Any], event: Any) -> bool:
    """Whether one pattern matches the event."""
    fields = event if isinstance(event, Mapping) else {}
    for key, expected in pattern.items():
        if key == "$or":
            if not any(matches(alternative, event) for alternative in expected):
                return False
            continue
        value = fields.get(key, _MISSING)
        if isinstance(expected, Mapping):
            # A missing parent is an empty object, so `{"a": {"b": [{"exists": false}]}}` matches {}.
            if not matches(expected, value if isinstance(value, Mapping) else {}):
                return False
        elif isinstance(expected, list):
            if not _leaf_matches(expected, value):
                return False
        else:
            raise ValueError(f"pattern leaves must be lists of matchers, got {expected!r} for {key!r}")
    return True


def _leaf_matches(matchers: list[Any], value: Any) -> bool:
    for matcher in matchers:
        if isinstance(matcher, Mapping) and "exists" in matcher:
            if bool(matcher["exists"]) == (value is not _MISSING):
                return True
            continue
        if value is _MISSING:
            continue
        candidates = value if isinstance(value, list) else [value]
        if any(_matches_value(matcher, candidate) for candidate in candidates):
            return True
    return False


def _matches_value(matcher: Any, value: Any) -> bool:
    if not isinstance(matcher, Mapping):
        return _equal(matcher, value)
    if len(matcher) != 1:
        raise ValueError(f"a matcher has exactly one operator: {matcher!r}")
    ((operator, operand),) = matcher.items()
    if operator == "prefix":
        return _affix(operand, value, str.startswith)
    if operator == "suffix":
        return _affix(operand, value, str.endswith)
    if operator == "equals-ignore-case":
        return isinstance(value, str) and value.casefold() == str(operand).casefold()
    if operator == "anything-but":
        return _anything_but(operand, value)
    if operator == "numeric":
        return _numeric(operand, value)
    raise ValueError(f"unsupported filter operator {operator!r}")


def _equal(expected: Any, value: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return type(expected) is type(value) and expected == value
    if isinstance(expected, int | float) and isinstance(value, int | float):
        return float(expected) == float(value)
    return type(expected) is type(value) and expected == value


def _affix(operand: Any, value: Any, test: Any) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(operand, Mapping):  # {"prefix": {"equals-ignore-case": "us-"}}
        return bool(test(value.casefold(), str(operand["equals-ignore-case"]).casefold()))
    return bool(test(value, str(operand)))


def _anything_but(operand: Any, value: Any) -> bool:
    if isinstance(operand, Mapping):
        return not _matches_value(operand, value)
    excluded = operand if isinstance(operand, list) else [operand]
    return not any(_equal(item, value) for item in excluded)


_COMPARE = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _numeric(operand: list[Any], value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if len(operand) % 2:
        raise ValueError(f"numeric takes operator/value pairs: {operand!r}")
    pairs = zip(operand[::2], operand[1::2], strict=True)
    return all(_COMPARE[op](float(value), float(bound)) for op, bound in pairs)
