"""`pgsearch query`: metadata search, optionally ordered by similarity."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from pgsearch.options import (
    MAX_LIMIT,
    QueryCommand,
    dataset_option,
    dsn_option,
    limit_option,
    offset_option,
    option_given,
    output_format_option,
    search_options,
    timeout_option,
)
from pgsearch.output import ROW_FORMATS, choose_output, emit, write_text

if TYPE_CHECKING:
    from pgsearch.api import Client, Result, SearchRequest

DEFAULT_HTML = "pgsearch-results.html"


def _not_empty(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("must not be empty", ctx=ctx, param=param)
    return value


def _output_path(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("must not be empty: give a file name, or - for stdout", ctx=ctx, param=param)
    return value


@click.command(cls=QueryCommand)
@click.argument("query", required=False)
@dataset_option()
@search_options
@limit_option
@offset_option
@output_format_option(
    *ROW_FORMATS,
    help="Output format. Default: from the -o file's extension (.html, .json, .csv), else table. "
    "In csv, a text cell starting with =, +, -, @, tab or CR gets a leading ' so spreadsheets do not "
    "run it as a formula. In table, control and bidi characters show escaped (\\n, \\x1b, \\u202e).",
)
@click.option(
    "--output",
    "-o",
    metavar="FILE",
    callback=_output_path,
    help="Write to FILE (overwritten) instead of stdout; - is stdout. -f html without -o writes "
    f"./{DEFAULT_HTML}, and refuses to overwrite it.",
)
@click.option(
    "--sql",
    "show_sql",
    is_flag=True,
    help="Print the statement (runnable in psql) to stdout or -o; run nothing.",
)
@click.option("--explain", is_flag=True, help="Print PostgreSQL's plan for the statement to stdout or -o.")
@click.option(
    "--add-to-group",
    metavar="GROUP",
    callback=_not_empty,
    help="Add the assets found (the first --limit rows) to GROUP; the rows shown include it.",
)
@click.option(
    "--remove-from-group",
    metavar="GROUP",
    callback=_not_empty,
    help="Remove the assets found (the first --limit rows) from GROUP; the rows shown lack it.",
)
@timeout_option
@dsn_option
def query(
    query: str | None,
    dataset: str,
    similar_to: str | None,
    similar_to_file: str | None,
    similar_to_shape: int | None,
    text: str | None,
    dissimilar: bool,
    shapes: bool,
    model: str | None,
    limit: int,
    offset: int,
    output_format: str,
    output: str | None,
    show_sql: bool,
    explain: bool,
    add_to_group: str | None,
    remove_from_group: str | None,
    timeout: float,
    dsn: str | None,
) -> None:
    """Find assets (or shapes) with a metadata QUERY, optionally ordered by similarity.

    QUERY is the metadata query language (see docs/query-language.md); leave it out to search
    the whole dataset. Each search runs as one SQL statement. A QUERY that starts with '-' must
    come after `--`, or it is read as options: pgsearch query -d demo -- '-width < -400'.

    Examples:

    \b
        pgsearch query '(squirrel > 2 or height > 200) and "dataset2" in groups' -d demo

    \b
        pgsearch query 'status == "review"' -d demo --similar-to park_0001.jpg --limit 12

    \b
        pgsearch query -d demo --similar-to park_0001.jpg --dissimilar -o far.html

    \b
        pgsearch query 'label == "car"' -d demo --shapes --format json

    \b
        pgsearch query 'bird >= 3' -d demo --sql -o statement.sql
    """
    from pgsearch.api import SearchRequest, connect

    ctx = click.get_current_context()
    format_given = option_given(ctx, "output_format")
    group = add_to_group if add_to_group is not None else remove_from_group
    if add_to_group is not None and remove_from_group is not None:
        raise click.UsageError("--add-to-group and --remove-from-group exclude each other")
    if show_sql and explain:
        raise click.UsageError(
            "--sql and --explain exclude each other: --sql prints the statement, --explain its plan"
        )
    text_only = "--sql" if show_sql else "--explain" if explain else None
    if text_only is not None:
        if group is not None:
            raise click.UsageError(
                f"{text_only} runs no search, so it changes no group; leave out --add-to-group/--remove-from-group"
            )
        if format_given:
            raise click.UsageError(
                f"{text_only} prints text; -f/--format does not apply (-o FILE writes it to a file)"
            )
    output_format, output = choose_output(
        output_format,
        output,
        format_given=format_given,
        default_html=DEFAULT_HTML,
        text_only=text_only is not None,
    )

    request = SearchRequest(
        dataset=dataset,
        query=query,
        similar_to=similar_to,
        similar_to_file=similar_to_file,
        similar_to_shape=similar_to_shape,
        text=text,
        dissimilar=dissimilar,
        shapes=shapes,
        model=model,
        limit=limit,
        offset=offset,
    )
    with connect(dsn, statement_timeout=timeout) as client, _timeout_worded_for_cli():
        if model is not None:  # a typo there would otherwise be ignored when nothing is ordered
            client.space(dataset, target=request.target, model=model)
        if show_sql:
            write_text(client.compile(request).inline().rstrip().rstrip(";") + ";\n", output)
            return
        if explain:
            write_text(client.explain(request).rstrip("\n") + "\n", output)
            return
        rows = client.query(**_as_kwargs(request))
        if group is not None:
            _change_group(client, request, rows, group, add=add_to_group is not None)
        # An HTML page draws the asset cards' shapes: read for the whole page in one query.
        renderer = None
        if output_format == "html":
            from pgsearch.gallery import gallery_renderer

            renderer = gallery_renderer(client.conn, rows)
    columns = list(rows.compiled.columns)
    emit(list(rows), columns, request.target, output_format, output, title=_title(request), html=renderer)


@contextmanager
def _timeout_worded_for_cli() -> Iterator[None]:
    """The API's QueryTimeout names connect()'s argument; here the option is what the user has."""
    from pgsearch.api import QueryTimeout

    try:
        yield
    except QueryTimeout as exc:
        raise click.ClickException(
            f"the query ran longer than {exc.seconds:g} s and was cancelled; --timeout raises the limit (0: none)"
        ) from None


def _change_group(client: Client, request: SearchRequest, rows: Result, group: str, *, add: bool) -> None:
    """Adds the assets of `rows` to `group` (or removes them), says what happened, and updates
    the rows' groups so that what is printed next shows the state after the change."""
    ids = sorted({row["asset_id"] if request.target == "shape" else row["id"] for row in rows})
    if add:
        changed = client.add_to_group(request.dataset, ids, group)
        click.echo(f"added {changed} of the {len(ids)} assets found to group {group!r}", err=True)
    else:
        if not client.has_group(request.dataset, group):
            click.echo(
                f"no asset of dataset {request.dataset!r} is in group {group!r}; nothing removed"
                f"{_close_groups(client, request.dataset, group)}",
                err=True,
            )
            return
        changed = client.remove_from_group(request.dataset, ids, group)
        click.echo(f"removed {changed} of the {len(ids)} assets found from group {group!r}", err=True)
    if len(rows) == request.limit:
        total, capped = client.count_assets(request)
        if total > len(ids):
            click.echo(
                f"{'at least ' if capped else ''}{total} assets match; only those of rows "
                f"{request.offset + 1} to {request.offset + len(rows)} were "
                f"{'added' if add else 'removed'} (raise -n/--limit, at most {MAX_LIMIT}, or page with --offset)",
                err=True,
            )
    for row in rows:
        groups = row.get("groups")
        if request.target == "asset" and isinstance(groups, list):
            if add and group not in groups:
                groups.append(group)
            elif not add:
                row["groups"] = [g for g in groups if g != group]


def _close_groups(client: Client, dataset: str, group: str) -> str:
    import difflib

    close = difflib.get_close_matches(group, client.group_names(dataset), n=3)
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?" if close else ""


def _as_kwargs(request: SearchRequest) -> dict[str, Any]:
    return dataclasses.asdict(request)


def _title(request: SearchRequest) -> str:
    parts = [f"dataset {request.dataset}"]
    if request.query:
        parts.append(request.query)
    order = "least similar to" if request.dissimilar else "similar to"
    for prefix, value in (
        ("", request.similar_to),
        ("file ", request.similar_to_file),
        ("shape ", request.similar_to_shape),
        ("text ", request.text),
    ):
        if value is not None:
            parts.append(f"{order} {prefix}{value}")
    return " · ".join(parts)
