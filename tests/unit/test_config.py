"""Configuration fails fast: a function missing a name it needs stops at start, and the template gives every one."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

from reimagine.config import MissingSettings, require_settings, settings
from tests.fixtures.template import function_env, functions, load_template, props

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
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
def test_a_function_without_its_settings_stops_at_start(function: str) -> None:
    # Given an environment with none of the names, When the handler module is loaded (Lambda's init)
    env = {k: v for k, v in os.environ.items() if k not in {"TABLE_NAME", "UPLOADS_BUCKET", "RESULTS_BUCKET"}}
    env["PYTHONPATH"] = str(FUNCTIONS_DIR)
    out = subprocess.run(
        [sys.executable, "-c", f"import {HANDLERS[function]}"], env=env, capture_output=True, text=True, check=False
    )
    # Then it stops there, naming every variable it needs
    required = import_module(HANDLERS[function]).REQUIRED_SETTINGS
    expected = ", ".join(name.upper() for name in required)
    assert f"MissingSettings: {expected} not set" in out.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("function", sorted(HANDLERS))
def test_the_template_sets_what_each_function_requires(function: str) -> None:
    required = {name.upper() for name in import_module(HANDLERS[function]).REQUIRED_SETTINGS}
    assert required - set(function_env(TEMPLATE, function)) == set()
