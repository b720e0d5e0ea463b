"""`pgsearch embed`: compute pending embeddings, retry failed ones, or drop a model's embeddings."""

from __future__ import annotations

import sys

import click

from pgsearch.options import dataset_option, dsn_option, json_option


@click.command()
@dataset_option()
@click.option(
    "--model",
    metavar="SPEC",
    help="Model to embed with (activating it if new) or to drop. Default: every model of the dataset.",
)
@click.option("--retry-failed", is_flag=True, help="Try the items whose embedding failed again.")
@click.option(
    "--drop", is_flag=True, help="Delete this model's embeddings and index for the dataset (deactivate)."
)
@click.option(
    "--embed-shapes/--no-embed-shapes", default=True, show_default=True, help="Embed shape crops too."
)
@click.option("--batch-size", type=click.IntRange(1, 4096), default=32, show_default=True)
@click.option(
    "--workers", type=click.IntRange(0, 64), default=None, help="Decoding processes (default: cores - 1)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@json_option
@dsn_option
def embed(
    dataset: str,
    model: str | None,
    retry_failed: bool,
    drop: bool,
    embed_shapes: bool,
    batch_size: int,
    workers: int | None,
    quiet: bool,
    as_json: bool,
    dsn: str | None,
) -> None:
    """Embed whatever is pending in a dataset: new assets and shapes, rows inserted with plain SQL
    (their images are read from `path`), and with --retry-failed what failed before.

    Example:

    \b
        pgsearch embed --dataset birds --retry-failed
        pgsearch embed --dataset birds --model timm:vit_small_patch14_dinov2.lvd142m
        pgsearch embed --dataset birds --model pixels --drop
    """
    from pgsearch.db import open_database
    from pgsearch.loader.embed import drop_model, embed_pending
    from pgsearch.output import embed_text, print_json, print_report

    if drop and not model:
        raise click.UsageError("--drop needs --model SPEC (the model whose embeddings to delete)")
    if drop and retry_failed:
        raise click.UsageError("--drop and --retry-failed do not go together")
    with open_database(dsn) as conn:
        if drop:
            assert model is not None
            dropped = drop_model(conn, dataset, model)
            result: dict[str, object] = {"dataset": dataset, "model": model, "dropped": dropped}
            if as_json:
                print_json(result)
            elif not quiet:
                click.echo(f"dropped the embeddings of {model} in {dataset} ({', '.join(dropped)})")
            return
        summary = embed_pending(
            conn,
            dataset,
            model,
            retry_failed=retry_failed,
            embed_shapes=embed_shapes,
            batch_size=batch_size,
            workers=workers,
            progress=not quiet and not as_json and sys.stderr.isatty(),
        )
    if as_json or not quiet:
        print_report(summary.to_dict(), as_json, embed_text)
