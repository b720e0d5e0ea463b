"""`pgsearch translate`: the SQL statement a query compiles to, literals inlined, for psql."""

from __future__ import annotations

import click

from pgsearch import db as database
from pgsearch.errors import NotFound
from pgsearch.options import dataset_option, dsn_option


@click.command()
@click.argument("query", required=False)
@dataset_option()
@click.option(
    "--shapes", is_flag=True, help="Rows are shapes (label, kind, bbox_*, area, attributes, asset.*)."
)
@click.option(
    "--similar-to",
    "similar_to",
    metavar="FILENAME|ID",
    help="Order by similarity to this asset (a filename, or a number for an asset id); with --shapes, a shape id.",
)
@click.option("--dissimilar", is_flag=True, help="Least similar first (needs --similar-to).")
@click.option("--model", metavar="M", help="Embedding model, when the dataset has several.")
@click.option(
    "--limit", type=click.IntRange(1, 100_000), default=100, show_default=True, help="Rows to return."
)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True, help="Rows to skip.")
@dsn_option
def translate(
    query: str | None,
    dataset: str,
    shapes: bool,
    similar_to: str | None,
    dissimilar: bool,
    model: str | None,
    limit: int,
    offset: int,
    dsn: str | None,
) -> None:
    """Print the SQL statement QUERY compiles to, runnable as is in psql.

    QUERY is a metadata query (see docs/query-language.md); without it every row matches.
    Values are written into the statement as quoted literals; `pgsearch query` sends the same
    statement with bound parameters instead.

    Example:

        pgsearch translate '(squirrel > 2 or height > 200) and "dataset2" in groups' -d zoo
    """
    from pgsearch.catalog import load_catalog
    from pgsearch.translator import AssetSource, ShapeSource, Similarity, compile_query

    if dissimilar and similar_to is None:
        raise click.UsageError("--dissimilar needs --similar-to")
    target = "shape" if shapes else "asset"
    with database.open_database(dsn) as conn:
        catalog = load_catalog(conn, dataset)
        similarity = None
        if similar_to is not None:
            space = catalog.space(target, model)
            if space is None:
                models = sorted({s.model for s in catalog.spaces if s.target == target})
                if not models:
                    raise NotFound(f"dataset {dataset!r} has no {target} embeddings; embed it first")
                if model is not None and model not in models:
                    raise NotFound(
                        f"dataset {dataset!r} has no {target} embeddings from {model!r}; it has: {', '.join(models)}"
                    )
                raise click.UsageError(
                    f"dataset {dataset!r} has {target} embeddings from several models; pick one with --model: {', '.join(models)}"
                )
            if shapes:
                if not similar_to.isdigit():
                    raise click.UsageError("with --shapes, --similar-to takes a shape id")
                source: AssetSource | ShapeSource = ShapeSource(int(similar_to))
            elif similar_to.isdigit():
                source = AssetSource(asset_id=int(similar_to))
            else:
                found = conn.execute(
                    "SELECT 1 FROM pgsearch.assets WHERE dataset_id = %s AND filename = %s",
                    (catalog.dataset_id, similar_to),
                ).fetchone()
                if found is None:
                    raise NotFound(f"dataset {dataset!r} has no asset named {similar_to!r}")
                source = AssetSource(filename=similar_to)
            similarity = Similarity(space, source, dissimilar=dissimilar)
    compiled = compile_query(query, catalog, target=target, similarity=similarity, limit=limit, offset=offset)
    click.echo(compiled.inline() + ";")
