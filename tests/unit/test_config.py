"""Configuration fails fast: a missing name is refused with the variable to set, and the template gives every
function the names it requires (that a function without them stops at start, in a fresh interpreter, is
tests/integration/test_function_start.py)."""

from __future__ import annotations

from importlib import import_module

import pytest

from reimagine.config import MissingSettings, require_settings, settings
from tests.fixtures.template import function_env, functions, load_template, props

TEMPLATE = load_template()
HANDLERS = {name: props(TEMPLATE, name)["Handler"].rsplit(".", 1)[0] for name in functions(TEMPLATE)}


@pytest.fixture
def unset_table(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TABLE_NAME")
    settings.cache_clear()
    yield
    settings.cache_clear()


def test_a_missing_name_is_refused_with_the_variable_to_set(unset_table) -> None:
    with pytest.raises(MissingSettings, match=r"^TABLE_NAME not set: this function needs them"):
        require_settings("table_name", "uploads_bucket")


@pytest.mark.parametrize("function", sorted(HANDLERS))
def test_the_template_sets_what_each_function_requires(function: str) -> None:
    required = {name.upper() for name in import_module(HANDLERS[function]).REQUIRED_SETTINGS}
    assert required - set(function_env(TEMPLATE, function)) == set()
