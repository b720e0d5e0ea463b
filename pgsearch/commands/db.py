"""`pgsearch db`: the database pgsearch works in."""

from __future__ import annotations

import os

import click

from pgsearch import db as database
from pgsearch import migrate
from pgsearch.config import redact, resolve_dsn
from pgsearch.options import dsn_option, json_option
from pgsearch.output import print_json


@click.group()
def db() -> None:
    """Start, stop, inspect and upgrade the database.

    Without --dsn these act on the embedded server under $PGSEARCH_HOME.

    Example:

        pgsearch db start && pgsearch db url
    """


def _embedded_only(dsn: str | None, action: str) -> None:
    if resolve_dsn(dsn) is not None:
        raise click.ClickException(
            f"`pgsearch db {action}` manages the embedded server; "
            "a server given by DSN is managed by its owner"
        )


@db.command()
@dsn_option
def start(dsn: str | None) -> None:
    """Start the embedded server (initialised on first use) and bring its schema up to date.

    It keeps running, on 127.0.0.1, for psql and BI tools until `pgsearch db stop`.

    Example:

        pgsearch db start
    """
    _embedded_only(dsn, "start")
    t = database.target(None)
    before, after = database.upgrade(t)
    click.echo(f"running: {redact(t.dsn)}  (`pgsearch db url` prints it with its password)")
    if before != after:
        click.echo(f"schema: {before or 'empty'} -> {after}")


@db.command()
@dsn_option
def stop(dsn: str | None) -> None:
    """Stop the embedded server.

    Example:

        pgsearch db stop
    """
    from pgsearch.server import EmbeddedServer

    _embedded_only(dsn, "stop")
    click.echo("stopped" if EmbeddedServer().stop() else "not running")


@db.command()
@dsn_option
@json_option
def status(dsn: str | None, as_json: bool) -> None:
    """Say where the database is, whether it runs, and its schema revision.

    Example:

        pgsearch db status --json
    """
    from pgsearch.dbstatus import database_status

    info = database_status(dsn)
    if as_json:
        print_json(info)
        return
    for key, value in info.items():
        click.echo(f"{key:16} {value if value is not None else '-'}")


@db.command()
@dsn_option
@click.option(
    "--passfile",
    "use_passfile",
    is_flag=True,
    help="Embedded server: leave the password out of the URL and name the 0600 libpq passfile "
    "in $PGSEARCH_HOME that holds it (passfile=...), for tools built on libpq.",
)
def url(dsn: str | None, use_passfile: bool) -> None:
    """Print the database URL (starting the embedded server if needed), for psql or a BI tool.

    For the embedded server it is the superuser's URL with its password in it: anyone who sees
    it can log in, so keep it out of shared shells and logs (`pgsearch db psql` passes no secret
    on a command line; --passfile prints a URL without it).

    Example:

        psql "$(pgsearch db url)"
    """
    t = database.target(dsn)
    if use_passfile:
        if not t.embedded:
            raise click.UsageError(
                "--passfile applies to the embedded server only; a DSN's password is its own"
            )
        from pgsearch.server import EmbeddedServer

        click.echo(EmbeddedServer().status().passfile_url)
        return
    click.echo(t.dsn)


@db.command(context_settings={"ignore_unknown_options": True})
@dsn_option
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
def psql(dsn: str | None, psql_args: tuple[str, ...]) -> None:
    """Open psql on the database; extra arguments go to psql.

    Example:

        pgsearch db psql -c 'SELECT count(*) FROM pgsearch.assets'
    """
    from pgsearch.server import psql_executable

    t = database.target(dsn)
    exe = psql_executable()
    target = t.dsn
    if t.embedded:
        # Any OS user can read a command line in /proc: the password goes by the passfile.
        from pgsearch.server import EmbeddedServer

        target = EmbeddedServer().status().passfile_url or target
    os.execv(exe, [exe, target, *psql_args])


@db.command()
@dsn_option
def upgrade(dsn: str | None) -> None:
    """Create or upgrade the pgsearch schema (and the vector extension). Safe to run again.

    Example:

        pgsearch db upgrade --dsn postgresql://me@dbhost/vision
    """
    t = database.target(dsn)
    before, after = database.upgrade(t)
    if before == after:
        click.echo(f"{t.label}: schema already at {after}")
    else:
        click.echo(f"{t.label}: schema {before or 'empty'} -> {after}")


@db.command(hidden=True)
@dsn_option
@click.option("--revision", default="base", show_default=True)
@click.confirmation_option(prompt="This drops pgsearch's tables and their data. Continue?")
def downgrade(dsn: str | None, revision: str) -> None:
    """Downgrade the schema (drops data). For development.

    Example:

        pgsearch db downgrade --revision base --yes
    """
    t = database.target(dsn)
    migrate.downgrade(t.dsn, revision)
    click.echo(f"{t.label}: schema downgraded to {revision}")


@db.command("grant-reader")
@dsn_option
@click.argument("name")
@click.option(
    "--password",
    envvar="PGSEARCH_READER_PASSWORD",
    metavar="PASSWORD",
    help="Set the role's password (default: $PGSEARCH_READER_PASSWORD; else left as is).",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    metavar="DATASET",
    help="A dataset NAME may see (repeat for several); the database shows it no other dataset's "
    "rows. Default: every dataset, those made later included. A second run replaces the list.",
)
def grant_reader(dsn: str | None, name: str, password: str | None, datasets: tuple[str, ...]) -> None:
    """Create (or update) a read-only LOGIN role NAME for psql and BI tools.

    NAME may SELECT the pgsearch views (v_assets, v_shapes, ...) and tables and call the search
    functions (similar_assets, ...), and nothing else: no writes. With --dataset it sees those
    datasets' rows only, everywhere (row-level security); without, every dataset. Safe to run
    again; do so after `pgsearch db upgrade` to cover new views. The embedded server asks every role for its
    password (SCRAM), so a role without one cannot log in there.

    An existing role is made LOGIN and loses its other privileges in the pgsearch schema. One
    that can do more beyond that schema (SUPERUSER, CREATEDB, CREATEROLE, REPLICATION,
    BYPASSRLS), or that would keep more than reading in pgsearch through a role it belongs to or
    objects it owns, is refused and left as it is. Reserved names (public, none, current_user, ...) and PostgreSQL's
    predefined roles (pg_*) are refused.

    Example:

        pgsearch db grant-reader metabase --password 's3cret' --dataset birds
    """
    from pgsearch import roles

    with database.open_database(dsn) as conn:
        for step in roles.grant_reader(conn, name, password, datasets):
            click.echo(step)
