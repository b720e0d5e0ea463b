"""`pgsearch map`: the 2-D map of a dataset (UMAP from the neighbour graph, clusters), stored
as a projection run; its listing, removal, and pictures (PNG, HTML page)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pgsearch.curate import projection as defaults
from pgsearch.options import dsn_option, output_format_option
from pgsearch.output import SUMMARY_FORMATS
from pgsearch.progress import Stages


def _output_path(value: str | None, suffix: str, option: str) -> Path | None:
    """The picture's path, checked writable before anything is computed."""
    from pgsearch.output import check_writable

    if value is None:
        return None
    if not value.strip():
        raise click.BadParameter(f"must not be empty: give a file name ending in {suffix}", param_hint=option)
    path = Path(value)
    if path.is_dir():
        raise click.BadParameter(
            f"{value} is a directory; give a file name ending in {suffix}", param_hint=option
        )
    if not path.parent.exists():
        raise click.BadParameter(f"the folder {path.parent} does not exist", param_hint=option)
    check_writable(path)
    return path


@click.command(name="map")
@click.option("--dataset", "-d", metavar="NAME", help="Dataset name (required except with --list).")
@click.option("--shapes", is_flag=True, help="Map the shapes (annotation crops) instead of the assets.")
@click.option("--model", metavar="SPEC", help="Embedding model, when the dataset has several.")
@click.option("--recompute", is_flag=True, help="Compute a new run even when the latest one still fits.")
@click.option(
    "--cluster",
    "cluster_method",
    type=click.Choice(["dbscan", "hdbscan"]),
    default="dbscan",
    show_default=True,
    help="Clustering of the 2-D points (noise is cluster -1).",
)
@click.option(
    "--eps",
    type=float,
    help="DBSCAN's neighbourhood radius, in map units. Default: 6 x the median distance of a point "
    "to its min-samples-th nearest point on the map (printed with the run).",
)
@click.option(
    "--min-samples", type=int, help="DBSCAN's / HDBSCAN's min_samples. Default: 5 for DBSCAN, 3 for HDBSCAN."
)
@click.option(
    "--min-cluster-size", type=int, help="HDBSCAN's smallest cluster. Default: max(10, 1.5 x sqrt(items))."
)
@click.option(
    "--n-neighbors",
    type=int,
    default=defaults.DEFAULT_NEIGHBORS,
    show_default=True,
    help="UMAP's neighbours (from the neighbour graph).",
)
@click.option(
    "--min-dist", type=float, default=defaults.DEFAULT_MIN_DIST, show_default=True, help="UMAP's min_dist."
)
@click.option(
    "--seed",
    type=int,
    default=defaults.DEFAULT_SEED,
    show_default=True,
    help="Random seed (the same map every time).",
)
@click.option(
    "--sample-above",
    type=int,
    default=defaults.SAMPLE_ABOVE,
    show_default=True,
    help="Above this many items UMAP is fitted on a balanced sample and the rest placed from it.",
)
@click.option(
    "--sample-size",
    type=int,
    default=defaults.SAMPLE_SIZE,
    show_default=True,
    help="Items UMAP is fitted on then.",
)
@click.option("--png", "png", metavar="FILE", help="Write a scatter plot of the map (PNG).")
@click.option("--html", "html", metavar="FILE", help="Write the interactive map page (HTML).")
@click.option(
    "--color-by",
    default="cluster",
    show_default=True,
    metavar="FIELD",
    help="PNG colours: cluster, label, status, group or metadata.KEY.",
)
@click.option("--list", "list_runs", is_flag=True, help="List the stored runs (of --dataset, or all).")
@click.option("--drop", "drop", type=int, metavar="RUN", help="Delete run RUN of --dataset.")
@output_format_option(*SUMMARY_FORMATS, help="Summary as text or JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@dsn_option
def map_command(
    dataset: str | None,
    shapes: bool,
    model: str | None,
    recompute: bool,
    cluster_method: str,
    eps: float | None,
    min_samples: int | None,
    min_cluster_size: int | None,
    n_neighbors: int,
    min_dist: float,
    seed: int,
    sample_above: int,
    sample_size: int,
    png: str | None,
    html: str | None,
    color_by: str,
    list_runs: bool,
    drop: int | None,
    output_format: str,
    quiet: bool,
    dsn: str | None,
) -> None:
    """Compute (or reuse) the 2-D map of a dataset: UMAP from the neighbour graph, clusters.

    The map is stored as a projection run: `x`, `y` and `cluster` in the query language and in
    pgsearch.v_assets / v_shapes follow the latest run. Without --recompute the latest run of the
    same model and options is reused as long as it covers the dataset's current items. Datasets
    above --sample-above items are fitted on a sample balanced over the space and the rest placed
    from their neighbours. Needs the curate extra: python3 -m pip install 'pgsearch[curate]'.

    Example:

    \b
        pgsearch map --dataset pets --png pets-map.png --html pets-map.html
        pgsearch query 'cluster == 3' --dataset pets
        pgsearch map --dataset pets --cluster hdbscan --recompute
        pgsearch map --list --dataset pets
        pgsearch map --dataset pets --drop 4
    """
    from pgsearch.curate import projection
    from pgsearch.db import open_database

    if list_runs and drop is not None:
        raise click.UsageError("--list and --drop do not go together")
    if dataset is None and not list_runs:
        raise click.UsageError("--dataset is required (except with --list)")
    png_path = _output_path(png, ".png", "--png")
    html_path = _output_path(html, ".html", "--html")
    if png_path is not None and html_path is not None and png_path.resolve() == html_path.resolve():
        raise click.UsageError("--png and --html name the same file; give each its own")
    if color_by != "cluster":
        projection.check_color_by(color_by)
    if list_runs:
        with open_database(dsn) as conn:
            runs = projection.list_runs(conn, dataset)
        _print_runs(runs, output_format)
        return
    assert dataset is not None
    if drop is not None:
        with open_database(dsn) as conn:
            gone = projection.drop_run(conn, dataset, drop)
        if output_format == "json":
            click.echo(json.dumps({"dropped": gone.as_dict()}, indent=2))
        else:
            click.echo(
                f"dropped map run {gone.run_id} of {gone.dataset} ({gone.target}s, {gone.items:,} points)"
            )
        return
    options = projection.MapOptions(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        seed=seed,
        cluster=cluster_method,
        eps=eps,
        min_samples=min_samples,
        min_cluster_size=min_cluster_size,
        sample_above=sample_above,
        sample_size=sample_size,
    )
    options.check()
    stages = Stages(not quiet)
    target = "shape" if shapes else "asset"
    try:
        with open_database(dsn) as conn:
            run = projection.make_map(
                conn,
                dataset,
                target=target,
                model=model,
                options=options,
                recompute=recompute,
                progress=None if quiet else stages,
            )
            # The run is stored whatever happens to the pictures.
            conn.commit()
            latest = _latest_note(conn, run)
            written: dict[str, str] = {}
            if png_path is not None or html_path is not None:
                stages("pictures")
                points = projection.run_points(
                    conn, run, color_by=None if color_by == "cluster" else color_by
                )
                conn.commit()
                for kind, picture in (("png", png_path), ("html", html_path)):
                    if picture is None:
                        continue
                    try:
                        if kind == "png":
                            written[kind] = str(projection.write_png(points, picture, run, color_by=color_by))
                        else:
                            written[kind] = str(projection.write_html(points, picture, run))
                    except OSError as exc:
                        raise click.ClickException(
                            f"cannot write {picture}: {exc.strerror or exc}; map run {run.run_id} is stored: "
                            "the same command again (without --recompute) draws it, the run reused"
                        ) from None
    finally:
        stages.close()
    if output_format == "json":
        click.echo(json.dumps({**run.as_dict(), **written}, indent=2, default=str))
        return
    click.echo(run.describe())
    for kind, path in written.items():
        click.echo(f"  {kind}: {path}")
    if latest:
        click.echo(latest)


def _latest_note(conn: Any, run: Any) -> str:
    """When the run is not the one x/y/cluster read (a newer run of another model exists)."""
    if run.is_latest:
        return ""
    return (
        f"  note: x, y and cluster (query language, v_assets) read the newest {run.target} map of the "
        f"dataset, not this run; --recompute makes this model's map the newest"
    )


def _print_runs(runs: list[Any], output_format: str) -> None:
    if output_format == "json":
        click.echo(json.dumps([r.as_dict() for r in runs], indent=2, default=str))
        return
    if not runs:
        click.echo("no map runs yet: `pgsearch map --dataset NAME` computes one")
        return
    header = (
        "run",
        "dataset",
        "target",
        "model",
        "items",
        "clusters",
        "noise",
        "seconds",
        "cluster method",
        "created",
        "",
    )
    rows = []
    for r in runs:
        cluster = r.params.get("cluster", {})
        method = cluster.get("method", "")
        if method == "dbscan":
            method += f" eps={cluster.get('eps', 0):.3g} min_samples={cluster.get('min_samples')}"
        elif method == "hdbscan":
            method += f" min_cluster_size={cluster.get('min_cluster_size')}"
        if r.sampling:
            method += f" (fitted on {r.sampling['fitted']:,})"
        rows.append(
            (
                str(r.run_id),
                r.dataset,
                r.target,
                r.model or "",
                f"{r.items:,}",
                str(r.clusters),
                f"{100 * r.noise_fraction:.1f}%",
                "" if r.seconds is None else f"{r.seconds:.1f}",
                method,
                r.created_at[:19].replace("T", " "),
                "latest" if r.is_latest else "",
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
