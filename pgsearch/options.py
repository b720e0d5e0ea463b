"""Option decorators shared by the commands, so every command spells them the same way."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from pgsearch.output import ROW_FORMATS, choose_output

F = TypeVar("F", bound=Callable[..., Any])

# The translator's bounds, from the module that imports no sqlglot (so `--help` stays light);
# re-exported for the commands.
from pgsearch.translator.bounds import MAX_LIMIT as MAX_LIMIT  # noqa: E402
from pgsearch.translator.bounds import MAX_OFFSET as MAX_OFFSET  # noqa: E402

# pgsearch.search_settings.STATEMENT_TIMEOUT_S, repeated for the same reason;
# tests/test_timeouts.py checks that they agree.
STATEMENT_TIMEOUT_S = 30.0


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


def output_format_option(
    *choices: str, default: str = "table", help: str = "Output format."
) -> Callable[[F], F]:
    """-f/--format: one of `choices`, pgsearch.output's ROW_FORMATS or SUMMARY_FORMATS."""

    def decorate(func: F) -> F:
        return click.option(
            "--format",
            "-f",
            "output_format",
            type=click.Choice(list(choices)),
            default=default,
            show_default=True,
            help=help,
        )(func)

    return decorate


def limit_option(func: F) -> F:
    return click.option(
        "--limit",
        "-n",
        type=click.IntRange(1, MAX_LIMIT),
        default=100,
        show_default=True,
        help="Rows to return.",
    )(func)


def offset_option(func: F) -> F:
    return click.option(
        "--offset",
        type=click.IntRange(0, MAX_OFFSET),
        default=0,
        show_default=True,
        help="Rows to skip (with --limit, pages through the results).",
    )(func)


def timeout_option(func: F) -> F:
    return click.option(
        "--timeout",
        "timeout",
        type=click.FloatRange(min=0, min_open=False),
        default=STATEMENT_TIMEOUT_S,
        show_default=True,
        metavar="SECONDS",
        help="Cancel the search when it runs longer than this (the server stops it); 0: no limit.",
    )(func)


def search_options(func: F) -> F:
    """What a search orders by and returns: the same options, with the same meaning, for
    `pgsearch query` and `pgsearch translate`."""
    decorators = [
        click.option(
            "--similar-to",
            metavar="FILENAME|ID",
            help="Order by similarity to this asset of the dataset (a filename, or digits for an "
            "asset id); with --shapes, shapes are ordered by that asset's vector.",
        ),
        click.option(
            "--similar-to-file",
            type=click.Path(dir_okay=False),
            help="Order by similarity to an image file.",
        ),
        click.option(
            "--similar-to-shape",
            type=int,
            metavar="ID",
            help="Order shapes by similarity to this shape (implies --shapes).",
        ),
        click.option(
            "--text", metavar="PROMPT", help="Order by similarity to a text prompt (CLIP-style models)."
        ),
        click.option(
            "--dissimilar", is_flag=True, help="Least similar first (an exact scan of the matching rows)."
        ),
        click.option("--shapes", is_flag=True, help="Rows are shapes (annotations) instead of assets."),
        click.option(
            "--model",
            metavar="SPEC",
            help="Embedding model, when the dataset has several; it must be one the dataset has.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


# A value that reads as a query: an operator, or a keyword between spaces.
_QUERY_LIKE = re.compile(r"==|!=|<|>|\s(and|or|in|not)\s")


class QueryCommand(click.Command):
    """A command whose QUERY argument may start with '-' (`-width < -400`): click would read it
    as options. Such an argument is refused with a pointer to `--`, instead of being taken as,
    say, `-f ilename == "a"` or `-o utput == 1`."""

    def _hint(self, ctx: click.Context, arg: str) -> str:
        return (
            f"a QUERY that starts with '-' must come after `--`: "
            f"{ctx.command_path} -d NAME [OPTIONS] -- {_shell_quote(arg)}"
        )

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = {
            name
            for param in self.get_params(ctx)
            if isinstance(param, click.Option) and not param.is_flag and not param.count
            for name in param.opts + param.secondary_opts
        }
        previous = None
        dashed: list[str] = []
        for arg in args:
            if arg == "--":
                break
            if (
                arg.startswith("-")
                and not arg.startswith("--")
                and len(arg) > 1
                and previous not in takes_value
            ):
                dashed.append(arg)
                if _QUERY_LIKE.search(arg):
                    raise click.UsageError(
                        f"{arg!r} looks like a QUERY, but it starts with '-' so it would be read as "
                        f"options; {self._hint(ctx, arg)}",
                        ctx,
                    )
            previous = arg
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            known = {name for param in self.get_params(ctx) for name in getattr(param, "opts", [])}
            unknown = [a for a in dashed if a[:2] not in known and a not in known]
            if unknown:
                raise click.UsageError(
                    f"{exc.format_message()} ({self._hint(ctx, unknown[0])})", ctx
                ) from None
            raise


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def curation_options(*, shapes: bool = True) -> Callable[[F], F]:
    """What every curation tool (duplicates, outliers, mislabels) takes, spelt the same way:
    --dataset, --model, --shapes (where the tool applies to shapes), -n/--limit (0: all),
    -f/--format table|json|csv|html, -o FILE, --recompute, -q/--quiet, --dsn."""

    def decorate(func: F) -> F:
        decorators = [
            dataset_option(),
            click.option(
                "--model",
                metavar="SPEC",
                help="Embedding model, when the dataset has several.",
            ),
            *(
                [
                    click.option(
                        "--shapes", is_flag=True, help="Work on shapes (annotations) instead of assets."
                    )
                ]
                if shapes
                else []
            ),
            click.option(
                "--limit",
                "-n",
                type=click.IntRange(0, None),
                default=100,
                show_default=True,
                help="Items to print, most suspicious first; 0 prints all of them.",
            ),
            output_format_option(*ROW_FORMATS),
            click.option(
                "--output",
                "-o",
                metavar="FILE",
                help="Write to FILE instead of stdout (the format follows its extension unless -f).",
            ),
            click.option(
                "--recompute", is_flag=True, help="Compute again even when the stored results are current."
            ),
            click.option("--quiet", "-q", is_flag=True, help="No progress bars or notes on stderr."),
            dsn_option,
        ]
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return decorate


def option_given(ctx: click.Context, name: str) -> bool:
    """Whether the user gave option `name` (its value is not the default)."""
    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def resolve_output(output_format: str, output: str | None, default_html: str) -> tuple[str, str | None]:
    """(format, output path) of a curation listing, by pgsearch.output.choose_output's rule; an
    empty -o is refused."""
    if output is not None and not output.strip():
        raise click.BadParameter(
            "must not be empty: give a file name, or - for stdout", param_hint="-o/--output"
        )
    given = option_given(click.get_current_context(), "output_format")
    return choose_output(output_format, output, format_given=given, default_html=default_html)
