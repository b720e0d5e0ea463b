"""`pgsearch translate`: the SQL statement a query compiles to, literals inlined, for psql."""

from __future__ import annotations

import click

from pgsearch.options import (
    QueryCommand,
    dataset_option,
    dsn_option,
    limit_option,
    offset_option,
    search_options,
)


@click.command(cls=QueryCommand)
@click.argument("query", required=False)
@dataset_option()
@search_options
@limit_option
@offset_option
@dsn_option
def translate(
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
    dsn: str | None,
) -> None:
    """Print the SQL statement QUERY compiles to, runnable as is in psql.

    QUERY is a metadata query (see docs/query-language.md); without it every row matches.
    Values are written into the statement as quoted literals; `pgsearch query` sends the same
    statement with bound parameters instead. The options mean what they mean for `pgsearch
    query`, and are checked the same way (the asset or shape to compare with must exist and have
    an embedding). A QUERY that starts with '-' must come after `--`:
    pgsearch translate -d zoo -- '-width < -400'.

    Example:

    \b
        pgsearch translate '(squirrel > 2 or height > 200) and "dataset2" in groups' -d zoo

    \b
        pgsearch translate 'label == "car"' -d zoo --shapes --similar-to-shape 42 -n 10
    """
    from pgsearch.api import SearchRequest, connect

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
    with connect(dsn) as client:
        if model is not None:  # checked also when nothing is ordered by similarity
            client.space(dataset, target=request.target, model=model)
        compiled = client.compile(request)
    click.echo(compiled.inline().rstrip().rstrip(";") + ";")
