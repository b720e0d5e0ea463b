"""`pgsearch status`: embedding state of a dataset, per model."""

from __future__ import annotations

import click

from pgsearch.options import dataset_option, dsn_option, json_option


@click.command()
@dataset_option()
@json_option
@dsn_option
def status(dataset: str, as_json: bool, dsn: str | None) -> None:
    """Show, per embedding model, how many assets and shapes are embedded, pending or failed (with reasons).

    Example:

    \b
        pgsearch status --dataset birds
        pgsearch status --dataset birds --json
    """
    from pgsearch import datasets
    from pgsearch.db import open_database
    from pgsearch.loader.embed import status as dataset_status
    from pgsearch.output import print_report, status_text

    with open_database(dsn) as conn:
        info = dataset_status(conn, dataset)
        ds = datasets.get_dataset(conn, dataset)
        info["default_model"] = datasets.default_model(conn, ds.id)
        info["embed_command"] = datasets.embed_command(dataset, datasets.model_to_embed(conn, ds.id))
    print_report(info, as_json, status_text)
