"""`pgsearch demo`: a sample dataset, loaded, searched, and shown as an HTML gallery."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pgsearch.options import dsn_option

if TYPE_CHECKING:
    import psycopg

EXAMPLE_QUERIES = (
    '(squirrel > 2 or height > 200) and "dataset2" in groups',
    "wheels % 2 == 1",
)


def _dataset_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter("a dataset name must not be empty", ctx=ctx, param=param)
    return value


@click.command()
@click.option(
    "--dataset",
    "-d",
    default="demo",
    show_default=True,
    metavar="NAME",
    callback=_dataset_name,
    help="Dataset to create (or reuse, when an earlier demo made it); never one with other images.",
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False),
    help="Where to write the sample images and the gallery. Default: $PGSEARCH_HOME/demo.",
)
@click.option(
    "--images",
    "count",
    type=click.IntRange(10, 20_000),
    default=150,
    show_default=True,
    help="How many sample images to draw.",
)
@click.option(
    "--model",
    default="pixels",
    show_default=True,
    metavar="SPEC",
    help="Embedding model; the default needs no weights (works offline).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@dsn_option
def demo(dataset: str, workdir: str | None, count: int, model: str, quiet: bool, dsn: str | None) -> None:
    """Create a sample dataset, load it, run example searches and write an HTML gallery.

    Draws scenes (parks with squirrels and birds, roads with cars, wheels and traffic lights,
    skies with birds) with COCO boxes, groups and statuses; loads them into the embedded server
    (or --dsn); runs the two example queries of the query language, a similarity and a
    least-similarity search; and writes one HTML page with the results. Running it again
    reuses what is already loaded. It refuses to load into an existing dataset that holds
    images from elsewhere (your own data): pick another --dataset.

    Example:

        pgsearch demo && pgsearch query 'bird >= 3' --dataset demo
    """
    from pgsearch import api
    from pgsearch.config import home_dir, resolve_dsn
    from pgsearch.demo_data import generate
    from pgsearch.gallery import page_boxes, write_gallery_sections
    from pgsearch.loader.pipeline import LoadOptions, load_folder

    embedded = resolve_dsn(dsn) is None
    root = Path(workdir) if workdir else home_dir() / "demo"
    try:
        (root / "data").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot create the demo folder {root}: {exc.strerror or exc}") from None
    # Unbounded: the demo loads, embeds, builds the index and the map on this session, work the
    # search timeouts are not meant for.
    with api.connect(dsn, statement_timeout=0, idle_in_transaction_timeout=0) as client:
        _refuse_foreign_dataset(client.conn, dataset, root / "data" / "images")
        try:
            images, annotations, metadata = generate(root / "data", n=count)
        except OSError as exc:
            raise click.ClickException(
                f"cannot write the sample images to {root / 'data'}: {exc.strerror or exc}"
            ) from None
        click.echo(f"1. drew {count} sample images with COCO boxes and metadata in {root / 'data'}")
        summary = load_folder(
            client.conn,
            LoadOptions(
                root=str(images),
                dataset=dataset,
                annotations=str(annotations),
                format="coco",
                metadata=str(metadata),
                model=model,
                progress=not quiet,
            ),
        )
        click.echo(
            f"2. loaded them into dataset {dataset!r} with model {summary.model}: "
            f"{summary.assets_new} new, {summary.assets_updated} updated, {summary.assets_unchanged} unchanged "
            f"assets; {summary.shapes_inserted} shapes; {summary.vectors_assets + summary.vectors_shapes} vectors"
        )
        sections: list[tuple[str, list[dict[str, Any]]]] = []
        for number, text in enumerate(EXAMPLE_QUERIES, start=3):
            rows = client.query(text, dataset=dataset, limit=24)
            total = client.query(text, dataset=dataset, limit=100_000)
            click.echo(f"{number}. query {text!r}: {len(total)} assets match")
            _show(rows[:5])
            sections.append((f"{text}  ({len(total)} match, first {len(rows)} shown)", list(rows)))

        anchor = client.query("squirrel >= 1", dataset=dataset, limit=1)
        if not anchor:
            anchor = client.query(None, dataset=dataset, limit=1)
        name = anchor[0]["filename"]
        similar = client.query(dataset=dataset, similar_to=name, limit=12)
        click.echo(f"5. most similar to {name}:")
        _show(similar[:5])
        sections.append((f"most similar to {name}", list(similar)))
        far = client.query(dataset=dataset, similar_to=name, dissimilar=True, limit=12)
        click.echo(f"6. least similar to {name}:")
        _show(far[:5])
        sections.append((f"least similar to {name}", list(far)))
        cars = client.query('label == "car"', dataset=dataset, shapes=True, limit=12)
        sections.append(('shapes: label == "car"', list(cars)))
        # The asset cards' boxes, for the whole page in one query.
        boxes = page_boxes(client.conn, [row for _, rows in sections for row in rows])
        links = _map_page(client.conn, dataset, root, quiet=quiet)

    try:
        page = write_gallery_sections(
            sections,
            root / "gallery.html",
            title=f"pgsearch demo · dataset {dataset}",
            links=links,
            boxes=boxes,
        )
    except OSError as exc:
        raise click.ClickException(f"cannot write {root / 'gallery.html'}: {exc.strerror or exc}") from None
    click.echo(f"8. wrote the gallery: {page.resolve()}")
    click.echo(f"\nTry: pgsearch query 'bird >= 3 and status == \"review\"' --dataset {dataset}")
    click.echo(f"     pgsearch query --dataset {dataset} --similar-to {name} --format json --limit 3")
    click.echo("     pgsearch db psql   (then: SELECT * FROM pgsearch.similar_assets(1, 5);)")
    if links:
        click.echo(f"     pgsearch query 'cluster == 0' --dataset {dataset}   (the map's largest cluster)")
        click.echo(f"     pgsearch outliers --dataset {dataset} -n 10")
    if embedded:
        # The server outlives the demo; say how to stop it (it keeps the data for next time).
        click.echo("\nThe embedded server keeps running (for psql and the commands above); stop it with:")
        click.echo("     pgsearch db stop")


def _map_page(conn: psycopg.Connection, dataset: str, root: Path, *, quiet: bool) -> list[tuple[str, str]]:
    """Step 7: the dataset's map (neighbour graph, UMAP, clusters) as an interactive page next to
    the gallery; the gallery links to it. Without the curate extra the step is skipped, saying how
    to install it."""
    from pgsearch.curate import projection
    from pgsearch.curate.spaces import CurationError

    try:
        run = projection.make_map(conn, dataset)
        conn.commit()
        page = projection.write_html(projection.run_points(conn, run), root / "map.html", run)
        conn.commit()
    except CurationError as exc:
        conn.rollback()
        click.echo(f"7. no map: {exc}")
        return []
    except OSError as exc:
        raise click.ClickException(f"cannot write {root / 'map.html'}: {exc.strerror or exc}") from None
    click.echo(
        f"7. mapped the dataset: {run.items} assets in {run.clusters} clusters "
        f"({100 * run.noise_fraction:.0f}% noise); the interactive map: {page.resolve()}"
    )
    return [(f"the dataset's map ({run.clusters} clusters): select a region, get its query", "map.html")]


def _refuse_foreign_dataset(conn: psycopg.Connection, dataset: str, images: Path) -> None:
    """The demo adds its images to `dataset` only when the dataset is new, or holds nothing but
    images of this demo folder: never into someone's own dataset."""
    from pgsearch.datasets import assets_outside, find_dataset

    existing = find_dataset(conn, dataset)
    foreign, example = assets_outside(conn, existing.id, images) if existing is not None else (0, None)
    conn.commit()
    if foreign:
        folder = str(images.absolute()) + os.sep
        raise click.ClickException(
            f"dataset {dataset!r} already exists and holds {foreign} asset(s) that are not demo images "
            f"of {folder} (e.g. {example}); the demo does not load into it: "
            f"pick another name with --dataset (or the --dir an earlier demo used)"
        )


def _show(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        distance = f"  distance {row['distance']:.3f}" if row.get("distance") is not None else ""
        labels = ", ".join(f"{k}×{v}" for k, v in sorted((row.get("label_counts") or {}).items()))
        click.echo(f"     {row['filename']:<16}{distance}  {labels}")
