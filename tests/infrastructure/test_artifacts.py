"""What `sam build` ships: each function's artifact, built by its Makefile target for this machine.

Each artifact is built once per run (`make build-<LogicalId> PLATFORM=host`; pip's cache keeps the
wheels) and examined alone: a fresh python3.13 with nothing but the artifact on its path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.artifacts import build, lambda_like_env, runtime_python
from tests.fixtures.template import ROOT, functions, load_template, props

pytestmark = pytest.mark.build

TEMPLATE = load_template()
FUNCTIONS = functions(TEMPLATE)
# Import packages each function must not ship: Pillow only where images are decoded or drawn,
# requests only where a provider speaks HTTP, email-validator (and dnspython) only in the API.
IMAGING, HTTP, EMAIL = {"PIL"}, {"requests"}, {"email_validator", "dns"}
NOT_SHIPPED = {
    "ApiFunction": IMAGING | HTTP,
    "CaptionFunction": EMAIL,
    "GenerateFunction": EMAIL,
    "NotifyFunction": IMAGING | HTTP | EMAIL,
    "SweeperFunction": IMAGING | HTTP | EMAIL,
    "MailEventsFunction": IMAGING | HTTP | EMAIL,
}


@pytest.fixture(scope="module")
def python313() -> str:
    python = runtime_python()
    if python is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have python3.13, the Lambda runtime's Python, to build the artifacts")
        pytest.skip("no python3.13 here: the artifacts are built and imported with the runtime's Python")
    return python


@pytest.fixture(scope="module")
def artifacts(python313: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("artifacts")
    return {name: build(name, root / name) for name in FUNCTIONS}


def _run(python: str, artifact: Path, code: str) -> Any:
    # -S: not even the interpreter's own site-packages; -B: no bytecode written, as on read-only /var/task.
    out = subprocess.run(
        [python, "-S", "-B", "-c", code],
        env=lambda_like_env(artifact),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _top_level(artifact: Path) -> set[str]:
    return {p.name.removesuffix(".py") for p in artifact.iterdir() if not p.name.endswith(".dist-info")}


def test_every_function_is_built_by_its_makefile_target() -> None:
    assert {name: TEMPLATE["Resources"][name].get("Metadata") for name in FUNCTIONS} == {
        name: {"BuildMethod": "makefile", "ContextPath": "."} for name in FUNCTIONS
    }


@pytest.mark.parametrize("function", FUNCTIONS)
def test_artifact_alone_imports_its_handler(function: str, python313: str, artifacts: dict[str, Path]) -> None:
    # Given the artifact alone on the path, When the handler Lambda names is imported, Then it is callable.
    module, attr = props(TEMPLATE, function)["Handler"].rsplit(".", 1)
    code = f"import importlib, json\nm = importlib.import_module({module!r})\nprint(json.dumps(callable(m.{attr})))"
    assert _run(python313, artifacts[function], code) is True


@pytest.mark.parametrize("function", FUNCTIONS)
def test_artifact_ships_nothing_its_function_does_not_import(function: str, artifacts: dict[str, Path]) -> None:
    assert _top_level(artifacts[function]) & NOT_SHIPPED[function] == set()


def test_the_shipping_check_sees_what_is_shipped(artifacts: dict[str, Path]) -> None:
    # Guards the check above: the caption function does ship Pillow and requests.
    assert _top_level(artifacts["CaptionFunction"]) >= IMAGING | HTTP


@pytest.mark.parametrize("function", FUNCTIONS)
def test_artifact_ships_no_tests(function: str, artifacts: dict[str, Path]) -> None:
    artifact = artifacts[function]
    package = artifact / "reimagine"
    shipped = [p.relative_to(artifact) for p in package.rglob("*") if p.name.startswith(("test", "conftest"))]
    assert ("tests" not in _top_level(artifact), shipped) == (True, [])


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_module_has_unchecked_hash_bytecode_for_the_runtime(function: str, artifacts: dict[str, Path]) -> None:
    # PEP 552: flags 0b01 = hash-based and not checked against the source, so the zip's timestamps
    # cannot make Python recompile on a read-only /var/task.
    artifact = artifacts[function]
    missing_or_checked = []
    for source in artifact.rglob("*.py"):
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        if not pyc.is_file() or int.from_bytes(pyc.read_bytes()[4:8], "little") != 0b01:
            missing_or_checked.append(str(source.relative_to(artifact)))
    assert missing_or_checked == []


def test_bytecode_is_used_whatever_the_source_timestamps(
    python313: str, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    # Given a shipped module whose source changes after the build, with a newer timestamp (as unzipping gives)
    package = shutil.copytree(artifacts["NotifyFunction"] / "reimagine", tmp_path / "reimagine")
    source = package / "errors.py"
    source.write_text(source.read_text() + "\nRECOMPILED = True\n")
    os.utime(source, (source.stat().st_atime + 3600, source.stat().st_mtime + 3600))
    # When it is imported, Then the compiled bytecode runs, not a recompiled source
    code = "import json, reimagine.errors as e\nprint(json.dumps(hasattr(e, 'RECOMPILED')))"
    assert _run(python313, tmp_path, code) is False


def _make(function: str, artifacts_dir: Path, deps: Path) -> str:
    out = subprocess.run(
        ["make", "--no-print-directory", "--makefile", str(ROOT / "Makefile"), f"build-{function}"],
        cwd=artifacts_dir.parent,
        env={**os.environ, "ARTIFACTS_DIR": str(artifacts_dir), "PLATFORM": "host", "MAKE_DEPS": str(deps)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_a_second_build_with_unchanged_locks_reinstalls_nothing(python313: str, tmp_path: Path) -> None:
    # Given one build of a function (its locked distributions installed once, into MAKE_DEPS)
    deps, artifact = tmp_path / "deps", tmp_path / "build" / "SweeperFunction"
    artifact.parent.mkdir()
    _make("SweeperFunction", artifact, deps)
    (installed,) = deps.iterdir()
    before = installed.stat().st_mtime_ns
    # When it is built again with the same lock file, as `sam build` does on every run
    second = _make("SweeperFunction", artifact, deps)
    # Then nothing is installed: the distributions installed the first time are copied again, untouched
    assert ("installing" in second, [p.name for p in deps.iterdir()], installed.stat().st_mtime_ns) == (
        False,
        [installed.name],
        before,
    )
