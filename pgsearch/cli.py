"""The `pgsearch` command line: one click group whose commands load on first use, so that
`pgsearch query` does not pay for torch when it does not embed anything."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from pgsearch import __version__
from pgsearch.errors import PgsearchError

# name -> "module:attribute"; each module holds the command and its help.
COMMANDS: dict[str, str] = {
    "db": "pgsearch.commands.db:db",
    "load": "pgsearch.commands.load:load",
    "status": "pgsearch.commands.status:status",
    "embed": "pgsearch.commands.embed:embed",
    "index": "pgsearch.commands.index:index",
    "translate": "pgsearch.commands.translate:translate",
    "query": "pgsearch.commands.query:query",
    "demo": "pgsearch.commands.demo:demo",
    "neighbors": "pgsearch.commands.neighbors:neighbors",
    "map": "pgsearch.commands.map:map_command",
    "duplicates": "pgsearch.commands.duplicates:duplicates",
    "outliers": "pgsearch.commands.outliers:outliers",
    "mislabels": "pgsearch.commands.mislabels:mislabels",
    "curate": "pgsearch.commands.curate:curate",
}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [PgsearchError]
    try:
        from pgsearch.translator.errors import QueryError

        errors.append(QueryError)
    except ImportError:  # translator not built yet
        pass
    return tuple(errors)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand:
            # click draws "did you mean" from self.commands, which a lazy group leaves empty.
            raise click.exceptions.NoSuchCommand(args[0], possibilities=list(COMMANDS), ctx=ctx) from None

    def invoke(self, ctx: click.Context) -> Any:
        import psycopg

        try:
            return super().invoke(ctx)
        except _user_errors() as exc:
            raise click.ClickException(str(exc)) from None
        except psycopg.errors.ProgramLimitExceeded as exc:
            # (an OperationalError too, but the connection is fine): an index entry over btree's
            # ~2,700 bytes: long text in an indexed field or a long group name, with the sketches
            # the covering indexes carry (sql/covering.sql).
            raise click.ClickException(
                f"the database refused a value as too large: {_first_line(exc)}; the write that "
                "carried it was rolled back. Index entries hold at most about 2,700 bytes: look for "
                "long text in an indexed field (`pgsearch index list`) or a long group name"
            ) from None
        except psycopg.OperationalError as exc:
            # The server went away mid-command (restart, network): say so in one line.
            raise click.ClickException(f"database connection failed: {_first_line(exc)}") from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pgsearch")
def cli() -> None:
    """Search and curate computer-vision datasets inside PostgreSQL with pgvector.

    By default everything lives in an embedded PostgreSQL server under $PGSEARCH_HOME (started
    on demand); give --dsn, $PGSEARCH_DSN or $DATABASE_URL to use another server.

    Example:

        pgsearch db start && pgsearch db status
    """


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="pgsearch")
