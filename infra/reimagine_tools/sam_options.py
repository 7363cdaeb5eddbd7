"""SAM CLI's configuration options, read as `sam local` reads them: `--parameter-overrides` and `--env-vars`.

Mirrors aws-sam-cli (samcli/cli/types.py `CfnParameterOverridesType`, samcli/commands/local/lib/
local_lambda.py `_make_env_vars`, samcli/local/lambdafn/env_vars.py `EnvironmentVariables`), so a
command line that works with `sam local start-api` means the same here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SamOptionError(ValueError):
    """An option's value is not in SAM's format; the message says which and how it should look."""


def _match_regex(match_pattern: str, delim: str) -> str:
    # samcli/cli/types.py `_generate_match_regex`: a value is "double quoted", 'single quoted' (either
    # may hold escaped quotes) or a run of characters up to the delimiter, with backslash escapes.
    quoted = f"""(\\"(?:\\\\{match_pattern}|[^\\"\\\\]+)*\\"|\'(?:\\\\{match_pattern}|[^\'\\\\]+)*\'"""
    return quoted + f"""|(?:\\\\{match_pattern}|[^{delim}\\"\\\\]+)+)"""


_KEY = """([A-Za-z0-9\\"\']+)"""
_VALUE = _match_regex(".", " ")
_PATTERNS = (
    re.compile(rf"(?:ParameterKey={_KEY},ParameterValue={_VALUE})"),
    re.compile(rf"(?:(?: ){_KEY}={_VALUE})"),
)
_EXAMPLES = "'KeyPairName=MyKey InstanceType=t1.micro' or 'ParameterKey=KeyPairName,ParameterValue=MyKey'"


def _unquote(value: str) -> str:
    """samcli/cli/types.py `_unquote_wrapped_quotes`: drop wrapping quotes, unescape `\\ `, `\\"`, `\\'`."""
    if value and value[0] == value[-1] and value[0] in ('"', "'"):
        value = value[1:-1]
    return value.replace("\\ ", " ").replace('\\"', '"').replace("\\'", "'")


def parse_parameter_overrides(values: Iterable[str]) -> dict[str, str]:
    """`--parameter-overrides` words (each may hold several `Key=Value` pairs) as {key: value}; later wins."""
    parameters: dict[str, str] = {}
    for value in values:
        if not value.strip():
            continue
        normalized = " " + value.strip()
        for pattern in _PATTERNS:
            groups = pattern.findall(normalized)
            if groups:
                parameters.update(groups)
                break
        else:
            raise SamOptionError(
                f"--parameter-overrides: {value!r} is not a valid format; it must look like {_EXAMPLES}"
            )
    return {_unquote(key): _unquote(val) for key, val in parameters.items()}


def _stringify(value: Any) -> str:
    """samcli's `EnvironmentVariables._stringify_value`: Lambda takes strings; lists, maps and null are blank."""
    if isinstance(value, dict | list | tuple) or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class EnvVars:
    """An `--env-vars` file: `{"Parameters": {VAR: v}, "<FunctionLogicalId or name>": {VAR: v}}`.

    As in SAM, a value replaces only a variable the function's Environment declares (it never adds
    one), and a function's own entry wins over `Parameters`, which applies to every function.
    """

    every_function: dict[str, str] = field(default_factory=dict)
    per_function: dict[str, dict[str, str]] = field(default_factory=dict)

    def for_function(self, logical_id: str, function_name: str = "") -> dict[str, str]:
        own = self.per_function.get(logical_id) or self.per_function.get(function_name) or {}
        return {**self.every_function, **own}

    def apply(self, declared: dict[str, str], logical_id: str, function_name: str = "") -> dict[str, str]:
        overrides = self.for_function(logical_id, function_name)
        return {name: overrides.get(name, value) for name, value in declared.items()}


def load_env_vars(path: str | Path) -> EnvVars:
    """Read and check an `--env-vars` JSON file; a clear SamOptionError for anything else."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SamOptionError(f"--env-vars: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SamOptionError(f"--env-vars: {path} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SamOptionError(f"--env-vars: {path} must hold a JSON object of objects")
    sections: dict[str, dict[str, str]] = {}
    for name, variables in data.items():
        if not isinstance(variables, dict):
            raise SamOptionError(f"--env-vars: {name!r} in {path} must be an object of variables, not {variables!r}")
        sections[str(name)] = {str(var): _stringify(value) for var, value in variables.items()}
    every = sections.pop("Parameters", {})
    return EnvVars(every, sections)


@dataclass(frozen=True)
class SamOptions:
    """What `sam local` takes too: `-t/--template`, `--parameter-overrides`, `--env-vars`."""

    template: Path | None = None  # None: the nearest template.yaml (template.find_template)
    parameters: dict[str, str] = field(default_factory=dict)
    env_vars: EnvVars | None = None
