"""Fixtures the unit tests of several subjects share (the moto mock itself, `aws`, is in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def table(aws):
    """The requests table the store reads: the fixture's, made from the template (status index included)."""
    return aws
