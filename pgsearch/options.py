"""Option decorators shared by the commands, so every command spells them the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def dsn_option(func: F) -> F:
    return click.option(
        "--dsn",
        metavar="DSN",
        help="PostgreSQL URL or key=value string. Default: $PGSEARCH_DSN, $DATABASE_URL, "
        "else the embedded server.",
    )(func)


def dataset_option(required: bool = True) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        return click.option("--dataset", "-d", required=required, metavar="NAME", help="Dataset name.")(func)

    return decorate


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(func)


def output_format_option(*choices: str, default: str = "table") -> Callable[[F], F]:
    def decorate(func: F) -> F:
        return click.option(
            "--format",
            "-f",
            "output_format",
            type=click.Choice(list(choices)),
            default=default,
            show_default=True,
            help="Output format.",
        )(func)

    return decorate
