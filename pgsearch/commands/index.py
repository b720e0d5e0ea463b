"""`pgsearch index`: indexes on user metadata fields, for fast filters on them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from pgsearch.options import dsn_option

KINDS = ("number", "string", "boolean")
F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def index() -> None:
    """Index metadata.KEY / attributes.KEY fields that queries filter on.

    Without an index a filter such as `metadata.iso > 800` reads every row and PostgreSQL cannot
    estimate how many match; with one, narrow filters come from the index, alone or in a similarity
    search. Built-in fields (status, groups, label counts, width, ...) are indexed already.

    Example:

    \b
        pgsearch index add metadata.camera metadata.iso
        pgsearch index list
        pgsearch index drop metadata.iso
    """


def _kind_option(func: F) -> F:
    return click.option(
        "--as",
        "kind",
        type=click.Choice(KINDS),
        help="Compare the values as this kind (default: the kind most stored values have).",
    )(func)


@index.command()
@click.argument("fields", nargs=-1, required=True, metavar="FIELD...")
@_kind_option
@dsn_option
def add(fields: tuple[str, ...], kind: str | None, dsn: str | None) -> None:
    """Create the column and index for each FIELD (metadata.KEY or attributes.KEY).

    Filters compare a field as a number, a string or a boolean; the index serves one of them,
    guessed from the stored values unless --as names it. The value goes into a generated column
    (rewriting the table once, about 7 s per million rows), indexed with each asset's id and
    sketches so that similarity searches filtered on it read the index alone; then the table is
    VACUUMed and ANALYZEd.

    Example:

    \b
        pgsearch index add metadata.iso metadata.weather
        pgsearch index add metadata.split --as string
    """
    from pgsearch.db import open_database
    from pgsearch.indexes import add_index

    with open_database(dsn) as conn:
        for field in fields:
            made = add_index(conn, field, kind)
            click.echo(
                f"{made.field} ({made.kind}): index {made.name} on {made.table}, {_size(made.size_bytes)}"
            )


@index.command(name="list")
@dsn_option
def list_(dsn: str | None) -> None:
    """List the field indexes: field, kind, table, index name and size.

    An index made by an earlier version (on the expression, with no column) is marked; `add`
    replaces it.

    Example:

    \b
        pgsearch index list
    """
    from pgsearch.db import open_database
    from pgsearch.indexes import list_indexes

    with open_database(dsn) as conn:
        found = list_indexes(conn)
    if not found:
        click.echo("no field indexes (pgsearch index add metadata.KEY makes one)")
    for i in found:
        note = "" if i.column else "\t(no column: pgsearch index add replaces it)"
        click.echo(f"{i.field}\t{i.kind}\t{i.table}\t{i.name}\t{_size(i.size_bytes)}{note}")


@index.command()
@click.argument("fields", nargs=-1, required=True, metavar="FIELD...")
@_kind_option
@dsn_option
def drop(fields: tuple[str, ...], kind: str | None, dsn: str | None) -> None:
    """Drop the indexes of each FIELD (of every kind, or of the one --as names).

    Example:

    \b
        pgsearch index drop metadata.iso
    """
    from pgsearch.db import open_database
    from pgsearch.indexes import drop_index

    with open_database(dsn) as conn:
        for field in fields:
            for gone in drop_index(conn, field, kind):
                click.echo(f"dropped {gone.name} ({gone.field}, {gone.kind})")


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.0f} KiB"
