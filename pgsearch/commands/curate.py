"""`pgsearch curate`: a subset to label first, balanced over the clusters of the dataset, written
into a group; optionally a report comparing it with a random subset of the same size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pgsearch.options import dataset_option, dsn_option, output_format_option
from pgsearch.output import SUMMARY_FORMATS
from pgsearch.progress import Stages, say_to_stderr

# Repeated from pgsearch.curate.subset (MAX_SEED, MAX_CLUSTERS) so that --help does not import
# numpy (tests/test_curate.py checks that they agree).
MAX_SEED = 2**32 - 1
MAX_CLUSTERS = 5_000


def _not_blank(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("must not be empty", ctx=ctx, param=param)
    return value


def _no_limit(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        raise click.UsageError(
            "pgsearch curate has no --limit: the number of assets to pick is --size (-n)", ctx=ctx
        )


def summary_text(summary: dict[str, Any], report: str | None) -> str:
    s = summary
    pct = f"{100.0 * s['chosen'] / s['candidates']:.1f}%" if s["candidates"] else "-"
    lines = [
        f"curated {s['chosen']:,} of {s['candidates']:,} candidate assets ({pct}) of {s['dataset']} "
        f"(model {s['model']}) into group {s['group']!r} in {s['seconds']:.1f} s (run {s['run_id']})",
        f"  clusters:            {s['clusters']:,} ({s['clustering']})",
        f"  clusters covered:    curated {s['covered']:,} ({s['covered_pct']:.1f}%), "
        f"random subset of the same size {s['random_covered']:,} ({s['random_covered_pct']:.1f}%)",
    ]
    if s["junk_excluded"]:
        lines.append(
            f"  excluded as junk:    {s['junk_excluded']:,} isolated assets (nearest non-duplicate neighbour "
            f"farther than {s['junk_threshold']:.4f}; --include-outliers keeps them); the random subset "
            f"holds {s['junk_in_random']:,} of them"
        )
    elif s["junk"]:
        lines.append(f"  isolated assets:     {s['junk']:,}, kept as clusters of one (--include-outliers)")
    else:
        lines.append("  excluded as junk:    none")
    lines.append(
        f"  duplicates skipped:  {s['duplicates_skipped']:,} near-duplicates of picked assets "
        f"({s['duplicates_source']})"
    )
    if s["removed_from_group"]:
        lines.append(f"  group {s['group']!r} emptied first (--replace): {s['removed_from_group']:,} assets")
    if report:
        lines.append(f"  report:              {report}")
    return "\n".join(lines) + "\n"


@click.command()
@dataset_option()
@click.option(
    "--size",
    "-n",
    "size",
    type=click.IntRange(1, None),
    required=True,
    help="How many assets to pick (the subset's size).",
)
@click.option("--limit", hidden=True, expose_value=False, is_eager=True, callback=_no_limit)
@click.option(
    "--into-group",
    "-g",
    "group",
    required=True,
    metavar="GROUP",
    callback=_not_blank,
    help='Write the subset into this group (`"GROUP" in groups` finds it). A group that already holds '
    "assets is refused unless --replace.",
)
@click.option(
    "--where",
    "-w",
    metavar="QUERY",
    callback=_not_blank,
    help="Only assets matching this query (the query language of pgsearch query) are candidates, e.g. "
    "'status == \"none\"' or 'not \"train\" in groups'.",
)
@click.option(
    "--report", "report", metavar="FILE", help="Write an HTML report comparing the subset with a random one."
)
@click.option("--model", metavar="SPEC", help="Embedding model, when the dataset has several.")
@click.option(
    "--seed",
    type=click.IntRange(0, MAX_SEED),
    default=0,
    show_default=True,
    help=f"Seed of k-means and of the random subset (0 to {MAX_SEED}).",
)
@click.option(
    "--include-outliers",
    is_flag=True,
    help="Keep isolated assets (no neighbour nearer than the junk threshold) as candidates, each a "
    "cluster of its own, so they are picked first; by default they are left out as junk.",
)
@click.option(
    "--clusters",
    type=click.IntRange(1, MAX_CLUSTERS),
    metavar="K",
    help="Balance over K k-means clusters of the vectors, 1 to 5,000 (default: the latest map's "
    "clusters when it covers every candidate, else K = sqrt(candidates), at most --size).",
)
@click.option("--replace", is_flag=True, help="Empty the group first when it already holds assets.")
@output_format_option(*SUMMARY_FORMATS, help="Format of the summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notes on stderr.")
@dsn_option
def curate(
    dataset: str,
    size: int,
    group: str,
    where: str | None,
    report: str | None,
    model: str | None,
    seed: int,
    include_outliers: bool,
    clusters: int | None,
    replace: bool,
    output_format: str,
    quiet: bool,
    dsn: str | None,
) -> None:
    """Pick a subset to label first: SIZE assets balanced over the clusters of the dataset.

    Clusters: the latest `pgsearch map` run's when it covers every candidate (its noise joins the
    nearest cluster), else k-means on the vectors. Every cluster gets a pick before large ones get
    more; beyond one each, picks follow the square root of cluster size, so small (sparse)
    clusters, where rare cases are, get more than their share. Within the quotas, picks are the
    assets that best represent their neighbourhood (facility location on the neighbour graph).
    Never two of one duplicate group (the stored `pgsearch duplicates` groups when current, else
    the groups it would find: identical files and graph pairs under its threshold). Isolated
    assets, with no neighbour near (noise, broken files), are left out unless --include-outliers;
    small groups of mutually close assets are rare cases, not junk, and are favoured.

    The group is written through the same group edit as `pgsearch query --add-to-group`, in one
    transaction with the run's record in pgsearch.curation_runs (tool 'curate'): an interrupted
    run leaves the group as it was. --report writes a self-contained HTML page comparing the
    subset with a random subset of the same size from the same candidates.

    Examples:

    \b
        pgsearch curate -d pets --size 1000 --into-group to-label --report curate.html
        pgsearch curate -d pets -n 500 -g batch-2 --where 'status == "none"' --seed 1
        pgsearch curate -d pets -n 500 -g batch-2 --replace --format json
    """
    from pgsearch.curate.subset import CurateRequest, run_curate
    from pgsearch.db import open_database

    if report is not None:
        # Both before anything is computed or changed: the group is written before the report.
        from pgsearch.curate.report import check_dependencies
        from pgsearch.output import check_writable

        if not report.strip():
            raise click.BadParameter("must not be empty", param_hint="--report")
        check_dependencies()
        check_writable(Path(report))
    stages = Stages(not quiet)
    say = say_to_stderr(quiet, stages)
    request = CurateRequest(
        dataset=dataset,
        size=size,
        group=group,
        where=where,
        model=model,
        seed=seed,
        include_outliers=include_outliers,
        clusters=clusters,
        replace=replace,
    )
    with open_database(dsn) as conn:
        result = run_curate(conn, request, say=say, progress=stages)
        stages.close()
        written = None
        if report is not None:
            from pgsearch.curate.report import write_report

            stages("writing the report")
            written = str(write_report(conn, result, report).resolve())
            stages.close()
    summary = result.summary()
    if written is not None:
        summary["report"] = written
    if output_format == "json":
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        click.echo(summary_text(summary, written), nl=False)
