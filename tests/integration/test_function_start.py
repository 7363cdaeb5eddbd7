"""What a function does at start (Lambda's init), each in a fresh interpreter with only the product on its
path: without its settings it stops there, naming them; with Lambda's environment its metrics are on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import import_module

import pytest

from tests.fixtures.child_python import FUNCTIONS
from tests.fixtures.template import functions, load_template, props

TEMPLATE = load_template()
HANDLERS = {name: props(TEMPLATE, name)["Handler"].rsplit(".", 1)[0] for name in functions(TEMPLATE)}


@pytest.mark.parametrize("function", sorted(HANDLERS))
def test_a_function_without_its_settings_stops_at_start(function: str) -> None:
    # Given an environment with none of the names, When the handler module is loaded (Lambda's init)
    env = {k: v for k, v in os.environ.items() if k not in {"TABLE_NAME", "UPLOADS_BUCKET", "RESULTS_BUCKET"}}
    env["PYTHONPATH"] = str(FUNCTIONS)
    out = subprocess.run(
        [sys.executable, "-c", f"import {HANDLERS[function]}"], env=env, capture_output=True, text=True, check=False
    )
    # Then it stops there, naming every variable it needs
    required = import_module(HANDLERS[function]).REQUIRED_SETTINGS
    expected = ", ".join(name.upper() for name in required)
    assert f"MissingSettings: {expected} not set" in out.stderr.strip().splitlines()[-1]


def test_metrics_are_on_unless_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given Lambda's environment (no POWERTOOLS_METRICS_DISABLED), When observability loads, Then it captures
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED")
    code = "import json, reimagine.observability as o; print(json.dumps(o.CAPTURE_COLD_START))"
    env = {**os.environ, "PYTHONPATH": str(FUNCTIONS)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is True
