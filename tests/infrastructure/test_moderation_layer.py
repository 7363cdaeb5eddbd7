"""The ModerationModel layer as `sam build` builds it (its Makefile, PLATFORM=host here), with the
caption function's artifact: together, on a bare python3.13 with only the two on the path (the
function first, then the layer's python/, as Lambda orders /var/task and /opt/python), the offline
moderator loads the model and scores an image; and the two fit Lambda's 250 MB."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.artifacts import build, lambda_like_env, runtime_python

pytestmark = pytest.mark.build

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    python = runtime_python()
    if python is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have python3.13, the Lambda runtime's Python, to build the artifacts")
        pytest.skip("no python3.13 here")
    root = tmp_path_factory.mktemp("layer")
    function = build("CaptionFunction", root / "CaptionFunction")
    layer = root / "ModerationModelLayer"
    subprocess.run(
        ["make", "-s", "-C", str(ROOT / "functions" / "layers" / "moderation-model"), "build-ModerationModelLayer"],
        env={**os.environ, "ARTIFACTS_DIR": str(layer), "PLATFORM": "host", "PYTHON": python},
        check=True,
        capture_output=True,
        timeout=600,
    )
    return python, function, layer


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_the_function_with_the_layer_scores_an_image_with_the_model(built: tuple[str, Path, Path]) -> None:
    python, function, layer = built
    env = {**lambda_like_env(function), "PYTHONPATH": f"{function}:{layer / 'python'}", "MODERATION": "offline"}
    code = (
        "import io, json\nfrom PIL import Image\nimport reimagine.handlers.caption as h\n"
        "b = io.BytesIO(); Image.new('RGB', (64, 64), 'white').save(b, 'PNG')\n"
        "print(json.dumps(h._moderator().nsfw_score(b.getvalue()) < 0.8))"
    )
    out = subprocess.run([python, "-S", "-B", "-c", code], env=env, capture_output=True, text=True, check=False)
    assert (out.returncode, out.stdout.strip().splitlines()[-1:]) == (0, [json.dumps(True)]), out.stderr


def test_the_function_without_the_layer_has_no_model(built: tuple[str, Path, Path]) -> None:
    python, function, _ = built
    code = "import importlib.util, json\nprint(json.dumps(importlib.util.find_spec('onnxruntime') is None))"
    out = subprocess.run(
        [python, "-S", "-B", "-c", code], env=lambda_like_env(function), capture_output=True, text=True, check=False
    )
    assert out.stdout.strip() == json.dumps(True), out.stderr


def test_the_function_and_the_layer_fit_lambdas_unzipped_limit(built: tuple[str, Path, Path]) -> None:
    _, function, layer = built
    assert _size(function) + _size(layer) < LAMBDA_UNZIPPED_LIMIT
