"""`pgsearch neighbors`: the k-nearest-neighbour graph of a dataset's embeddings, built or refreshed."""

from __future__ import annotations

import json
from typing import Any

import click

from pgsearch.options import dataset_option, dsn_option, output_format_option
from pgsearch.output import SUMMARY_FORMATS
from pgsearch.progress import Stages


@click.command()
@dataset_option()
@click.option(
    "--shapes", is_flag=True, help="The graph of the shapes' (annotations') embeddings, not the assets'."
)
@click.option("--model", metavar="SPEC", help="Embedding model, when the dataset has several.")
@click.option(
    "-k",
    "k",
    type=int,
    metavar="K",
    help="Neighbours per item, 1..200. Default: the stored graph's, else 15 (every other item in a "
    "space of 15 or fewer). A new K rebuilds.",
)
@click.option("--rebuild", is_flag=True, help="Recompute the whole graph, even when it is up to date.")
@click.option(
    "--method",
    type=click.Choice(["auto", "exact", "ivf"]),
    default="auto",
    show_default=True,
    help="How a build computes it: exact (every pair), ivf (k-means lists, exact distances inside "
    "the probed ones, tuned to recall 0.99), auto (exact below 20,000 items).",
)
@output_format_option(*SUMMARY_FORMATS, help="Output format of the summary.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, and no summary unless --format json.")
@dsn_option
def neighbors(
    dataset: str,
    shapes: bool,
    model: str | None,
    k: int | None,
    rebuild: bool,
    method: str,
    output_format: str,
    quiet: bool,
    dsn: str | None,
) -> None:
    """Build or refresh the k-nearest-neighbour graph of a dataset's embeddings (cosine distance),
    the input of `pgsearch map` and the curation commands; psql sees it in pgsearch.v_neighbors.

    The first run computes the whole graph (1,000,000 x 512-d items in about a minute on 2 cores).
    Later runs bring it up to date: items embedded since, changed (a reloaded file) or removed are
    recomputed through the HNSW index when they are few (under 1% of the graph), else the graph is
    rebuilt. The summary says how many items have no row yet (missing) and how many rows lag
    behind their vectors (stale).

    Example:

    \b
        pgsearch neighbors --dataset pets
        pgsearch neighbors --dataset pets --shapes -k 30 --format json
        pgsearch neighbors --dataset pets --model pixels --rebuild
    """
    from pgsearch.curate.graph import update_graph
    from pgsearch.db import open_database

    stages = Stages(not quiet)
    with open_database(dsn) as conn:
        try:
            result = update_graph(
                conn,
                dataset,
                target="shape" if shapes else "asset",
                model=model,
                k=k,
                rebuild=rebuild,
                method=method,
                progress=stages,
            )
        finally:
            stages.close()
    info = {"dataset": dataset, **result.as_dict()}
    if output_format == "json":
        click.echo(json.dumps(info, indent=2))
    elif not quiet:
        click.echo(format_summary(info))


def format_summary(info: dict[str, Any]) -> str:
    what = f"{info['target']}s of {info['dataset']} ({info['model']})"
    done = {
        "built": f"built in {info['seconds']:.1f} s",
        "refreshed": f"refreshed in {info['seconds']:.1f} s ({info['updated']:,} rows written or deleted)",
        "up to date": "already up to date",
    }.get(info["action"], info["action"])
    recall = info.get("estimated_recall")
    method = info["method"] + (
        f", estimated recall {recall:.3f}" if recall is not None and recall < 1 else ""
    )
    return (
        f"neighbour graph of the {what}: {info['items']:,} items, k {info['k']}, {method}; {done}\n"
        f"  {info['missing']:,} missing (embedded, no row yet), {info['stale']:,} stale"
    )
