"""`pgsearch duplicates`: exact and near-duplicate groups of a dataset, from the neighbour graph;
optionally tag all but the kept item of each group. run_state is shared with `pgsearch outliers`."""

from __future__ import annotations

import html as html_lib
import time
from typing import Any

import click

from pgsearch.options import curation_options, resolve_output
from pgsearch.progress import Stages, say_to_stderr

# Measured defaults, repeated from pgsearch.curate.duplicates.THRESHOLDS so that --help does not
# import numpy (tests/test_duplicates.py checks that they agree).
HELP_THRESHOLDS = "pixels 0.002, openclip 0.05, timm (DINOv2) 0.05, other models 0.05"


def run_state(run: Any, params: dict[str, Any], recompute: bool) -> tuple[bool, str]:
    """(reuse the stored results?, why): reused when the latest run had the same parameters (and
    graph) and no item of the space was added or changed since."""
    if recompute:
        return False, "recomputed (--recompute)"
    if run is None:
        return False, "computed (first run)"
    if run.changed_since:
        return False, (
            f"recomputed: the stored results (run {run.run_id}, {run.created_at[:19]}) were stale, "
            f"{run.changed_since:,} item{'s' if run.changed_since != 1 else ''} added or changed since"
        )
    differ = sorted(k for k in params if run.params.get(k) != params[k])
    if differ:
        return False, f"recomputed: {', '.join(differ)} differ from the stored run {run.run_id}'s"
    return (
        True,
        f"reused the stored results of run {run.run_id} ({run.created_at[:19]}): nothing changed since",
    )


GROUP_STYLE = """<style>
.grid figure:first-child { outline: 4px solid #16a34a; outline-offset: -4px; }
.grid figure:first-child .name::before { content: "kept \\2713  "; color: #16a34a; }
</style>"""


def groups_html(rows: list[dict[str, Any]], title: str, *, note: str) -> str:
    """A gallery page with one row of thumbnails per duplicate group, its representative (the item
    kept) first and outlined."""
    from pgsearch.gallery import sections_html

    sections: list[tuple[str | None, list[dict[str, Any]]]] = []
    for row in rows:
        if not sections or sections[-1][1][0]["duplicate_group"] != row["duplicate_group"]:
            sections.append(("", []))
        sections[-1][1].append(row)
    named: list[tuple[str | None, list[dict[str, Any]]]] = []
    for _, members in sections:
        first = members[0]
        shown = "" if len(members) == first["group_size"] else f", {len(members)} shown"
        kind = first["kind"] if first["representative"] else "near"
        named.append(
            (
                f"group {first['duplicate_group']}: {first['group_size']} items ({kind}{shown}); "
                f"kept: {first.get('filename') or first['id']}",
                members,
            )
        )
    page = sections_html(named, title=title)
    page = page.replace("</head>", GROUP_STYLE + "</head>", 1)
    return page.replace("</h1>", f'</h1><p class="summary">{html_lib.escape(note)}</p>', 1)


ASSET_TABLE = ("duplicate_group", "id", "filename", "kind", "distance", "representative", "width", "height")
SHAPE_TABLE = ("duplicate_group", "id", "asset_id", "filename", "label", "kind", "distance", "representative")
ASSET_COLUMNS = (
    "id", "filename", "duplicate_group", "group_size", "representative", "kind", "distance",
    "path", "width", "height", "size", "status", "groups", "label_counts",
)  # fmt: skip
SHAPE_COLUMNS = (
    "id", "asset_id", "filename", "label", "duplicate_group", "group_size", "representative", "kind",
    "distance", "path", "bbox_x", "bbox_y", "bbox_width", "bbox_height", "area",
)  # fmt: skip


@click.command()
@curation_options()
@click.option(
    "--threshold",
    "-t",
    type=float,
    metavar="DIST",
    help="Cosine distance under which two items are near duplicates. Default per model: "
    f"{HELP_THRESHOLDS}. With pixels, re-encoded (JPEG q70) and resized copies fall under "
    "0.002, 5% crops and +10% brightness mostly do not (0.002-0.5); raise it to catch those at "
    "the price of false pairs among similar-looking images.",
)
@click.option(
    "--add-to-group",
    metavar="NAME",
    help="Add every duplicate but the kept one of each group to group NAME (assets only).",
)
@click.option(
    "--keep",
    type=click.Choice(["largest", "first", "smallest", "newest", "oldest"]),
    help="Which item of each group --add-to-group leaves out (the group's representative): largest "
    "(most pixels, then the biggest file: the default), first (lowest id), smallest, newest or "
    "oldest (when it was added).",
)
def duplicates(
    dataset: str,
    model: str | None,
    shapes: bool,
    limit: int,
    output_format: str,
    output: str | None,
    dsn: str | None,
    threshold: float | None,
    add_to_group: str | None,
    keep: str | None,
    recompute: bool,
    quiet: bool,
) -> None:
    """Find exact and near-duplicate groups, biggest groups first.

    Exact duplicates are files with the same content (sha256); for --shapes, the same box on the
    same file content. Near duplicates are neighbour-graph pairs under --threshold (cosine
    distance). Pairs are joined into groups (connected components); each group keeps one item,
    its representative (--keep, default the one with the most pixels), and every member is within
    the threshold of it (members chained farther away form groups of their own). The neighbour
    graph is built first when there is none. Results are stored (the field `duplicate_group` of
    the query language) and reused while nothing changed.

    Examples:

    \b
        pgsearch duplicates --dataset pets
        pgsearch duplicates --dataset pets --threshold 0.01 -f html -o dupes.html
        pgsearch duplicates --dataset pets --add-to-group to-remove --keep largest
        pgsearch duplicates --dataset pets --shapes -f json -n 0
    """
    from pgsearch.curate import duplicates as dup
    from pgsearch.curate.results import latest_run, record_again, write_results
    from pgsearch.curate.spaces import resolve_space
    from pgsearch.db import open_database
    from pgsearch.output import emit

    if keep is not None and add_to_group is None:
        raise click.UsageError(
            "--keep says which item of each group --add-to-group leaves out; add --add-to-group NAME "
            "(the listing always shows the default representative)"
        )
    if add_to_group is not None and not add_to_group.strip():
        raise click.BadParameter("must not be empty", param_hint="--add-to-group")
    if add_to_group is not None and shapes:
        raise click.UsageError(
            "--add-to-group works on assets (groups hold images); with --shapes, list the duplicates "
            "and tag their assets with pgsearch query --add-to-group"
        )
    if threshold is not None:
        dup.check_threshold(threshold)
    keep = keep or dup.DEFAULT_KEEP
    output_format, output = resolve_output(output_format, output, "pgsearch-duplicates.html")
    target = "shape" if shapes else "asset"
    stages = Stages(not quiet)
    say = say_to_stderr(quiet, stages)
    started = time.monotonic()

    with open_database(dsn) as conn:
        space = resolve_space(conn, dataset, target, model)
        if threshold is None:
            threshold, family = dup.threshold_for(space.model)
            if family is None:
                say(
                    f"threshold {threshold:g}: model {space.model} has no measured default (the fallback "
                    "for unknown models); choose one with --threshold"
                )
        state = dup.prepare_graph(conn, space, say=say, progress=stages)
        params = {"threshold": threshold, "keep": keep, "graph": state.updated_at}
        run = latest_run(conn, space, "duplicates")
        reuse, why = run_state(run, params, recompute)
        if reuse:
            groups = dup.stored_groups(conn, space)
        else:
            stages("grouping duplicates")
            groups = dup.find_duplicates(conn, space, state.graph, threshold, keep)
            stages.close()
        conn.commit()
        tagged = None
        if add_to_group is not None:
            from pgsearch.api import Client

            removable = groups.removable().tolist()
            tagged = Client(conn).add_to_group(dataset, removable, add_to_group)
        if not reuse or add_to_group is not None:
            # After the group edit, so that the run is not older than the rows it touched.
            stages("storing results")
            write_results(
                conn,
                space,
                "duplicates",
                groups.rows(),
                items=len(state.graph.ids),
                flagged=groups.members - groups.groups,
                params=params,
                started=started,
            )
            conn.commit()
            stages.close()
        elif run is not None:
            # Reused: make it the run `duplicate_group` reads, also when another model's run of
            # this dataset came after it.
            again = record_again(conn, space, "duplicates", run.run_id)
            conn.commit()
            if again != run.run_id:
                say(f"recorded again as run {again}, the latest, so that duplicate_group reads these groups")
        rows = dup.member_rows(conn, space, groups, limit)
        conn.commit()

    exact = int((groups.kinds() == "exact").sum())
    what = f"{dataset} ({target}s, model {space.model})"
    say(
        f"duplicates of {what} at threshold {threshold:g}: {groups.groups:,} groups, "
        f"{groups.members:,} items ({exact:,} exact, {groups.members - exact:,} near); {why}"
    )
    dropped = int(groups.stats.get("dropped") or 0)
    if dropped:
        say(
            f"{dropped:,} more items are near a member of a group but not within the threshold of any "
            "kept item: they are not listed (a lower threshold chains less)"
        )
    if tagged is not None:
        say(
            f"added {tagged:,} of the {groups.members - groups.groups:,} duplicates (all but the kept "
            f"one, --keep {keep}, of each group) to group {add_to_group!r}"
        )
    if len(rows) < groups.members:
        say(f"showing {len(rows):,} of {groups.members:,} items (-n 0 shows all)")
    note = (
        f"{groups.groups} groups, {groups.members} items at threshold {threshold:g} (cosine distance); "
        "each group's kept item first, outlined; distance = to the kept item."
    )
    emit(
        rows,
        SHAPE_COLUMNS if shapes else ASSET_COLUMNS,
        target,
        output_format,
        output,
        title=f"Duplicates of {what}",
        table_columns=SHAPE_TABLE if shapes else ASSET_TABLE,
        html=lambda r, t: groups_html(r, t, note=note),
    )
