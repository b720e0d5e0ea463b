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
@click.option(
    "--default-model",
    metavar="SPEC",
    help="Make this model (one the dataset has) the one searches and the SQL search functions use "
    "when the dataset has several and none is named; `pgsearch status` shows it.",
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
    default_model: str | None,
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
        pgsearch embed --dataset birds --default-model pixels

    With several models, searches that name none use the dataset's default model. Adding a
    second model keeps the first one as the default.
    """
    from pgsearch import datasets
    from pgsearch.db import open_database
    from pgsearch.loader.embed import drop_model, embed_pending
    from pgsearch.output import embed_text, print_json, print_report

    if drop and not model:
        raise click.UsageError("--drop needs --model SPEC (the model whose embeddings to delete)")
    if drop and retry_failed:
        raise click.UsageError("--drop and --retry-failed do not go together")
    if drop and default_model:
        raise click.UsageError("--drop and --default-model do not go together")
    with open_database(dsn) as conn:
        ds = datasets.get_dataset(conn, dataset)
        if drop:
            assert model is not None
            dropped = drop_model(conn, dataset, model)
            if not datasets.dataset_model_names(conn, ds.id):
                # The dataset keeps the name of the model it had, so the hints (and a plain
                # `pgsearch embed`) know what to embed with again.
                datasets.remember_model(conn, dataset, model)
            conn.commit()
            again = datasets.embed_command(dataset, model)
            result: dict[str, object] = {
                "dataset": dataset,
                "model": model,
                "dropped": dropped,
                "again": again,
            }
            if as_json:
                print_json(result)
            elif not quiet:
                click.echo(
                    f"dropped the embeddings of {model} in {dataset} ({', '.join(dropped)}); "
                    f"`{again}` embeds it again"
                )
            return
        if default_model is not None and model is None and not retry_failed:
            # Only the setting: no embedding (and no model to load).
            datasets.set_default_model(conn, dataset, default_model)
            conn.commit()
            if as_json:
                print_json({"dataset": dataset, "default_model": default_model})
            elif not quiet:
                click.echo(f"{default_model} is the default model of {dataset}")
            return
        models = datasets.dataset_model_names(conn, ds.id)
        if model is None and not models:
            # No model at all (its embeddings were dropped): the one the dataset remembers.
            model = datasets.default_model(conn, ds.id)
            if model is not None and not quiet and not as_json:
                click.echo(f"embedding with {model}, the default model of {dataset}", err=True)
        if model is not None and len(models) == 1 and model != models[0]:
            # A second model joins: what searched the first one without naming it keeps doing so.
            datasets.remember_model(conn, dataset, models[0])
            kept = datasets.default_model(conn, ds.id)
            conn.commit()
            if kept is not None and not quiet and not as_json:
                click.echo(
                    f"{kept} stays the default model of {dataset} (searches naming no model use it); "
                    f"`pgsearch embed --dataset {dataset} --default-model {model}` changes that",
                    err=True,
                )
        conn.commit()
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
        if default_model is not None:
            datasets.set_default_model(conn, dataset, default_model)
            conn.commit()
    if as_json or not quiet:
        print_report(summary.to_dict(), as_json, embed_text)
