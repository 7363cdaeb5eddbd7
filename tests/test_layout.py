"""The tests' own layout: shared fakes and builders come from tests/fixtures, never from another test module,
and tests/unit stays in-process (no servers, no child processes: those tests live in tests/integration or
tests/emulator). Read from each file's imports, so a test that breaks the rule fails here by name."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
UNIT = TESTS / "unit"

# What starts a server or another process: the modules, and the names imported from elsewhere.
SPAWNING_MODULES = {
    "subprocess",
    "multiprocessing",
    "http.server",
    "socketserver",
    "reimagine_emulator.stack",
    "reimagine_emulator.runner",
    "reimagine_emulator.http_server",
    "reimagine_emulator.runtime_api",
    "tests.fixtures.moto_server",
    "tests.fixtures.hostile_provider",
    "tests.fixtures.stalling_provider",
    "tests.fixtures.child_python",
}
SPAWNING_NAMES = {
    "HfStandin",
    "ModerationStandin",
    "HostileProvider",
    "StallingProvider",
    "ThreadedMotoServer",
    "EmbeddedStack",
    "ApiServer",
    "ThreadingHTTPServer",
    "HTTPServer",
    "Popen",
}


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)


def _imports(path: Path) -> Iterator[tuple[str, str | None]]:
    """(module, name) for each import in the file: name is None for `import module`."""
    package = _module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            for alias in node.names:
                yield module, alias.name


def _is_test_module(dotted: str) -> bool:
    return dotted.startswith("tests.") and dotted.rsplit(".", 1)[-1].startswith("test_")


def test_no_test_module_imports_another_test_module() -> None:
    # Given every Python file under tests/
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        # When its imports are read (`from tests.unit import test_x` names the module as the imported name)
        for module, name in _imports(path):
            if _is_test_module(module) or (name is not None and _is_test_module(f"{module}.{name}")):
                offenders.append(f"{path.relative_to(TESTS)} imports {module}{'.' + name if name else ''}")
    # Then none reaches into a test module: what tests share lives in tests/fixtures (or a conftest)
    assert offenders == []


def test_unit_tests_start_no_servers_and_no_processes() -> None:
    # Given every module of tests/unit
    offenders = []
    for path in sorted(UNIT.rglob("*.py")):
        # When its imports are read
        for module, name in _imports(path):
            spawning = (
                module in SPAWNING_MODULES
                or module.startswith(tuple(f"{m}." for m in SPAWNING_MODULES))
                or f"{module}.{name}" in SPAWNING_MODULES
                or name in SPAWNING_NAMES
            )
            if spawning:
                offenders.append(f"{path.relative_to(TESTS)} imports {module}{'.' + name if name else ''}")
    # Then none can start a server or a child process
    assert offenders == []
