"""`pgsearch outliers`: the most unique (isolated) items of a dataset first, from the neighbour
graph and the latest map's sparse clusters."""

from __future__ import annotations

import html as html_lib
import time
from typing import Any

import click

from pgsearch.commands.duplicates import run_state
from pgsearch.options import curation_options, resolve_output
from pgsearch.progress import Stages, say_to_stderr

ASSET_TABLE = (
    "rank",
    "id",
    "filename",
    "uniqueness",
    "knn_distance",
    "cluster_size",
    "flagged",
    "width",
    "height",
)
SHAPE_TABLE = (
    "rank",
    "id",
    "asset_id",
    "filename",
    "label",
    "uniqueness",
    "knn_distance",
    "cluster_size",
    "flagged",
)
ASSET_COLUMNS = (
    "rank", "id", "filename", "uniqueness", "knn_distance", "cluster_size", "sparse", "flagged",
    "path", "width", "height", "size", "status", "groups", "label_counts",
)  # fmt: skip
SHAPE_COLUMNS = (
    "rank", "id", "asset_id", "filename", "label", "uniqueness", "knn_distance", "cluster_size", "sparse",
    "flagged", "path", "bbox_x", "bbox_y", "bbox_width", "bbox_height", "area",
)  # fmt: skip


def outliers_html(rows: list[dict[str, Any]], title: str, *, threshold: float, note: str) -> str:
    """A gallery page: the flagged items (uniqueness >= threshold), then the others shown, most
    unique first; each figure's distance is its mean distance to its nearest neighbours."""
    from pgsearch.gallery import sections_html

    shown = [dict(r, distance=r["knn_distance"]) for r in rows]
    flagged = [r for r in shown if r["flagged"]]
    rest = [r for r in shown if not r["flagged"]]
    sections: list[tuple[str | None, list[dict[str, Any]]]] = []
    if flagged or not rest:
        sections.append((f"Flagged: uniqueness >= {threshold:g}", flagged))
    if rest:
        sections.append((f"Below the threshold (uniqueness < {threshold:g}), most unique first", rest))
    page = sections_html(sections, title=title)
    return page.replace("<h2>", f'<p class="summary">{html_lib.escape(note)}</p><h2>', 1)


def _shown(limit: int, flagged: int, flagged_only: bool) -> int:
    """Rows to print, most unique first (0: all, -1: none): --flagged prints the flagged ones,
    which are the first `flagged` rows."""
    if not flagged_only:
        return limit
    if flagged == 0:
        return -1
    return flagged if limit == 0 else min(limit, flagged)


@click.command()
@curation_options()
@click.option(
    "--threshold",
    "-t",
    type=float,
    metavar="U",
    help="Uniqueness (0..1) from which an item counts as flagged. Default 0.5: a robust z-score of "
    "3.5 of its mean distance to its 15 nearest neighbours (in log scale), +1 when it is noise or "
    "in a sparse cluster of the latest map.",
)
@click.option("--flagged", "flagged_only", is_flag=True, help="Print only the flagged items.")
def outliers(
    dataset: str,
    model: str | None,
    shapes: bool,
    limit: int,
    output_format: str,
    output: str | None,
    dsn: str | None,
    threshold: float | None,
    flagged_only: bool,
    recompute: bool,
    quiet: bool,
) -> None:
    """Rank items by how unique they are, most isolated first: corrupt images, odd crops, rare cases.

    uniqueness (0..1) comes from each item's mean cosine distance to its 15 nearest neighbours,
    as a robust z-score (median and MAD, log scale): 0 for an item as close to its neighbours as
    the median item, 0.5 at z = 3.5, towards 1 for the most isolated. Items that are noise or in
    a sparse cluster of the latest map (pgsearch map: at most max(5, min(1% of the items, a tenth
    of the mean cluster)) items) rank as if their z were 1 higher. The neighbour graph is built
    first when there is none. Results are stored (the field `uniqueness` of the query language)
    and reused while nothing changed.

    Examples:

    \b
        pgsearch outliers --dataset pets -n 40
        pgsearch outliers --dataset pets -f html -o unique.html
        pgsearch outliers --dataset pets --flagged -f json -n 0
        pgsearch query 'uniqueness > 0.5' --dataset pets
    """
    from pgsearch.curate import outliers as out
    from pgsearch.curate.duplicates import prepare_graph
    from pgsearch.curate.results import latest_run, record_again, write_results
    from pgsearch.curate.spaces import resolve_space
    from pgsearch.db import open_database
    from pgsearch.output import emit

    threshold = out.check_threshold(threshold) if threshold is not None else out.DEFAULT_THRESHOLD
    output_format, output = resolve_output(output_format, output, "pgsearch-outliers.html")
    target = "shape" if shapes else "asset"
    stages = Stages(not quiet)
    say = say_to_stderr(quiet, stages)
    started = time.monotonic()

    with open_database(dsn) as conn:
        space = resolve_space(conn, dataset, target, model)
        state = prepare_graph(conn, space, say=say, progress=stages)
        map_run = out.latest_map(conn, space)
        params: dict[str, Any] = {
            "k": min(out.DEFAULT_K, state.graph.k),
            "threshold": threshold,
            "map_run": map_run,
            "graph": state.updated_at,
        }
        run = latest_run(conn, space, "outliers")
        reuse, why = run_state(run, {k: v for k, v in params.items() if k != "threshold"}, recompute)
        if reuse:
            assert run is not None
            # The fields read the latest run of the dataset's target: this one again, not
            # another model's that ran since.
            recorded = record_again(conn, space, "outliers", run.run_id)
            if recorded != run.run_id:
                why += (
                    f"; recorded again as run {recorded}, the latest, so that `uniqueness` (query "
                    f"language, v_assets) reads these results, not another model's newer run"
                )
            bound = run.params.get("sparse_bound")
            flagged = out.stored_flagged(conn, space, threshold)
            shown = _shown(limit, flagged, flagged_only)
            rows = out.stored_rows(conn, space, shown, threshold, bound) if shown >= 0 else []
            items = run.items
        else:
            stages("scoring")
            scores = out.space_scores(conn, space, state.graph)
            stages.close()
            bound = scores.sparse_bound
            params["sparse_bound"] = bound
            stages("storing results")
            write_results(
                conn,
                space,
                "outliers",
                scores.rows(),
                items=len(scores.ids),
                flagged=scores.flagged(threshold),
                params=params,
                started=started,
            )
            stages.close()
            flagged = scores.flagged(threshold)
            shown = _shown(limit, flagged, flagged_only)
            rows = out.top_rows(conn, space, scores, shown, threshold) if shown >= 0 else []
            items = len(scores.ids)
        conn.commit()

    what = f"{dataset} ({target}s, model {space.model})"
    map_note = (
        f"map run {map_run}, sparse clusters <= {bound} items"
        if map_run is not None
        else "no map yet (pgsearch map adds sparse clusters)"
    )
    say(
        f"outliers of {what}: {flagged:,} of {items:,} flagged at uniqueness >= {threshold:g} ({map_note}); {why}"
    )
    note = (
        f"{flagged} of {items} items flagged at uniqueness >= {threshold:g}; distance = mean cosine distance "
        f"to the {params['k']} nearest neighbours; {map_note}."
    )
    emit(
        rows,
        SHAPE_COLUMNS if shapes else ASSET_COLUMNS,
        target,
        output_format,
        output,
        title=f"Outliers of {what}",
        table_columns=SHAPE_TABLE if shapes else ASSET_TABLE,
        html=lambda r, t: outliers_html(r, t, threshold=threshold, note=note),
    )
