"""The local stack's commands extend the operator tools' CLI; without the `[local]` extra they say so."""

from __future__ import annotations

import importlib.util

import pytest

from reimagine_emulator import cli as emulator_cli
from reimagine_tools import cli as tools_cli

LOCAL_COMMANDS = {"local", "demo", "outbox"}


def _commands(parser) -> set[str]:
    (sub,) = (action for action in parser._actions if action.dest == "command")
    return set(sub.choices)


def test_the_tools_cli_alone_has_no_local_stack_commands():
    # When the tools build their parser without extensions
    commands = _commands(tools_cli.build_parser())

    # Then it offers exactly the commands that work against any deployment
    assert commands == {"submit", "styles", "status", "redrive", "doctor"}


def test_the_reimagine_command_adds_the_local_stack_commands():
    # When the console script's parser is built
    commands = _commands(emulator_cli.build_parser())

    # Then it is the tools' commands and the local stack's
    assert commands == {"submit", "styles", "status", "redrive", "doctor"} | LOCAL_COMMANDS


def test_local_up_without_the_local_extra_is_one_line_naming_it(monkeypatch, capsys):
    # Given an install without moto (the [local] extra)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "moto" else real_find_spec(name, *a)
    )

    # When the local stack is asked for
    code = emulator_cli.main(["local", "up", "--port", "0"])

    # Then it exits 2 with one line saying what to install
    assert (code, capsys.readouterr().err) == (
        2,
        "reimagine: the local stack needs moto: pip install 'reimagine[local]' (make demo does)\n",
    )


@pytest.mark.parametrize("command", [["demo"], ["local", "up"]])
def test_both_stack_commands_check_the_install(monkeypatch, capsys, command):
    # Given an install without the Runtime Interface Client
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "awslambdaric" else real_find_spec(name, *a)
    )

    # When the command runs
    code = emulator_cli.main(command)

    # Then it stops before starting anything, naming what is missing
    assert (code, "awslambdaric" in capsys.readouterr().err) == (2, True)
