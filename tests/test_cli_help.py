"""Every command has help with an example, and the README mentions it."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pgsearch.cli import COMMANDS, cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _all_commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(cli)
    found: list[tuple[str, click.Command]] = []
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None, name
        found.append((name, command))
        if isinstance(command, click.Group):
            for sub in command.list_commands(ctx):
                subcommand = command.get_command(ctx, sub)
                assert subcommand is not None
                if not subcommand.hidden:
                    found.append((f"{name} {sub}", subcommand))
    return found


@pytest.mark.parametrize(("name", "command"), _all_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_command_has_help_with_an_example(name: str, command: click.Command) -> None:
    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert command.help and len(command.help.strip()) > 20
    assert "Example" in result.output, f"`pgsearch {name} --help` shows no example"


@pytest.mark.parametrize("name", [name for name, _ in _all_commands()])
def test_command_appears_in_readme(name: str) -> None:
    assert f"pgsearch {name}" in README, f"README.md never mentions `pgsearch {name}`"


def test_top_level_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
