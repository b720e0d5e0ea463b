"""`pgsearch mislabels`: items whose label disagrees with the labels of their neighbours in the
neighbour graph, with the label the neighbours suggest (pgsearch/curate/mislabels.py)."""

from __future__ import annotations

import html as html_lib
import math
from typing import Any

import click

from pgsearch.options import curation_options, resolve_output
from pgsearch.progress import Stages, say_to_stderr

# pgsearch.curate.mislabels.DEFAULT_THRESHOLD, repeated so that --help does not import numpy
# (tests/test_mislabels.py checks that they agree).
DEFAULT_THRESHOLD = 0.8
DEFAULT_HTML = "pgsearch-mislabels.html"
# Nearest differently-labelled neighbours shown next to each item in the HTML page.
HTML_NEIGHBOURS = 4

ASSET_COLUMNS = ("id", "filename", "label", "suggested_label", "mislabel_score", "path", "width", "height")
SHAPE_COLUMNS = (
    "id", "asset_id", "filename", "label", "suggested_label", "mislabel_score", "kind", "path",
    "bbox_x", "bbox_y", "bbox_width", "bbox_height",
)  # fmt: skip
ASSET_TABLE = ("id", "filename", "label", "suggested_label", "mislabel_score")
SHAPE_TABLE = ("id", "asset_id", "filename", "label", "suggested_label", "mislabel_score")


def _threshold(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value) or not 0.0 < value <= 1.0:
        raise click.BadParameter(
            f"must be a number above 0 and at most 1, not {value:g} (the score is 0 for an item whose "
            f"neighbours all share its label, near 1 when they all carry another; default {DEFAULT_THRESHOLD})",
            ctx=ctx,
            param=param,
        )
    return value


@click.command()
@curation_options()
@click.option(
    "--threshold",
    "-t",
    type=float,
    default=DEFAULT_THRESHOLD,
    show_default=True,
    metavar="S",
    callback=_threshold,
    help="Flag items whose mislabel score is at least S (0 < S <= 1). The default is a fixed "
    "constant, not tuned per dataset: an item is flagged when its neighbours give other labels at "
    "least four times the weight they give its own (plus a small prior). Every score is stored "
    "whatever S is.",
)
def mislabels(
    dataset: str,
    model: str | None,
    shapes: bool,
    limit: int,
    output_format: str,
    output: str | None,
    dsn: str | None,
    threshold: float,
    recompute: bool,
    quiet: bool,
) -> None:
    """Find suspected mislabels: items whose neighbours carry another label, most suspicious first.

    Scores every asset with exactly one label (classification datasets, e.g. loaded with
    --format folders), or with --shapes every shape (object labels, against the shapes around it
    in the shape space), from the labels of its nearest neighbours in the neighbour graph: a
    neighbour's vote counts as much as the item lies inside that neighbour's own neighbourhood.
    The score (0..1) is the share of the vote that goes to other labels; suggested_label is the
    label the neighbours weigh most when it is not the item's own. Assets with several labels or
    none are skipped (and counted). The neighbour graph (30 neighbours) is built when missing.

    Every score is stored: `mislabel_score` and `suggested_label` are fields of the query
    language and columns of pgsearch.v_assets / v_shapes / v_mislabels. The stored results are
    reused while no item, label or the graph changed since; otherwise they are recomputed.

    Examples:

    \b
        pgsearch mislabels --dataset flowers
        pgsearch mislabels --dataset flowers -f html -o mislabels.html
        pgsearch mislabels --dataset pets --shapes --threshold 0.9 -f json -n 0
        pgsearch query 'mislabel_score >= 0.8 and suggested_label == "tulip"' --dataset flowers
    """
    from pgsearch.curate import mislabels as ml
    from pgsearch.db import open_database
    from pgsearch.items import item_details
    from pgsearch.output import emit

    output_format, output = resolve_output(output_format, output, DEFAULT_HTML)
    target = "shape" if shapes else "asset"
    stages = Stages(not quiet)
    say = say_to_stderr(quiet, stages)
    with open_database(dsn) as conn:
        run = ml.find_mislabels(
            conn,
            dataset,
            target=target,
            model=model,
            threshold=threshold,
            limit=limit,
            recompute=recompute,
            neighbours=HTML_NEIGHBOURS if output_format == "html" else 0,
            progress=stages,
            say=say,
        )
        stages.close()
        wanted = [r.item_id for r in run.rows] + [n[0] for r in run.rows for n in r.neighbours]
        details = item_details(conn, target, wanted)
        conn.commit()
    say(_summary(dataset, run))
    rows = [_row(r, details, target) for r in run.rows]
    what = f"{dataset} ({target}s, model {run.space.model})"
    emit(
        rows,
        SHAPE_COLUMNS if shapes else ASSET_COLUMNS,
        target,
        output_format,
        output,
        title=f"Suspected mislabels of {what}",
        table_columns=SHAPE_TABLE if shapes else ASSET_TABLE,
        html=lambda r, t: mislabels_html(r, t, note=_summary(dataset, run), details=details),
    )


def _summary(dataset: str, run: Any) -> str:
    skipped = run.several + run.unlabelled
    parts = [
        f"mislabels of {dataset} ({run.space.target}s, model {run.space.model}): {run.scored:,} scored "
        f"({run.labels} labels)"
    ]
    if skipped:
        parts.append(
            f"{skipped:,} skipped ({run.several:,} with several labels, {run.unlabelled:,} without a label)"
        )
    if run.several > run.scored:
        parts.append("most assets have several labels: for object labels, add --shapes")
    if run.not_embedded:
        parts.append(f"{run.not_embedded:,} labelled but not embedded (pgsearch embed)")
    parts.append(f"{run.flagged:,} flagged at threshold {run.threshold:g}")
    shown = len(run.rows)
    if shown < run.flagged:
        parts.append(f"{shown:,} shown (-n 0 shows all)")
    if run.action == "reused":
        tail = f"reused the stored results of {run.reason}: nothing changed since"
        if run.recorded_from is not None:
            tail += (
                f"; recorded again as run {run.run_id}, the latest, so that mislabel_score and "
                "suggested_label (query language, views) read these results, not another model's newer run"
            )
    else:
        tail = f"recomputed ({run.reason}) in {run.seconds:.1f} s, run {run.run_id}"
    return "; ".join(parts) + "; " + tail


def _row(flagged: Any, details: dict[int, dict[str, Any]], target: str) -> dict[str, Any]:
    info = details.get(flagged.item_id, {})
    row: dict[str, Any] = {"id": flagged.item_id}
    if target == "shape":
        row["asset_id"] = info.get("asset_id")
    row.update(
        filename=info.get("filename"),
        label=flagged.label,
        suggested_label=flagged.suggested,
        mislabel_score=round(flagged.score, 4),
    )
    if target == "shape":
        row["kind"] = info.get("kind")
    row.update(path=info.get("path"), width=info.get("width"), height=info.get("height"))
    if target == "shape":
        for key in ("bbox_x", "bbox_y", "bbox_width", "bbox_height"):
            row[key] = info.get(key)
        row.pop("width")
        row.pop("height")
    if flagged.neighbours:
        row["_neighbours"] = flagged.neighbours
    return row


_STYLE = """
.item { display: flex; gap: 12px; align-items: flex-start; margin: 0 0 14px; padding: 10px;
  background: #fff; border-radius: 6px; box-shadow: 0 1px 3px #0002; }
.item > figure { flex: 0 0 var(--thumb); box-shadow: none; }
.item .others { display: flex; gap: 8px; flex-wrap: wrap; align-items: flex-start; }
.item .others figure { width: calc(var(--thumb) * 0.6); box-shadow: 0 1px 2px #0002; }
.item .others figure img, .item .others figure .missing { height: calc(var(--thumb) * 0.6); }
.verdict { font-size: 13px; }
.verdict .from { color: #b91c1c; font-weight: 600; }
.verdict .to { color: #15803d; font-weight: 600; }
.others-title { font-size: 12px; color: #52525b; margin: 0 0 4px; width: 100%; }
"""


def mislabels_html(
    rows: list[dict[str, Any]],
    title: str,
    *,
    note: str,
    details: dict[int, dict[str, Any]],
    thumb_px: int = 200,
) -> str:
    """One self-contained page: per flagged item its thumbnail (its box drawn for a shape) with its
    label, the suggestion and the score, next to its nearest neighbours that carry another label."""
    from pgsearch.gallery import STYLE as GALLERY_STYLE
    from pgsearch.gallery import Thumbnails, recorded_pixels, shape_box
    from pgsearch.loader.images import DEFAULT_MAX_PIXELS

    e = html_lib.escape
    thumbs = Thumbnails(None, thumb_px, DEFAULT_MAX_PIXELS)

    def figure(info: dict[str, Any], label: Any, caption: str) -> str:
        data_uri, problem = thumbs.get(info.get("path"), shape_box(info), label, recorded_pixels(info))
        name = str(info.get("filename") or "")
        if data_uri is not None:
            image = f'<img src="{data_uri}" alt="{e(name)}" title="{e(str(info.get("path") or ""))}">'
        else:
            image = f'<div class="missing">{e(problem or "no image")}</div>'
        return f'<figure>{image}<figcaption><div class="name">{e(name)}</div>{caption}</figcaption></figure>'

    body: list[str] = []
    for row in rows:
        suggestion = row.get("suggested_label")
        verdict = f'<span class="from">{e(str(row["label"]))}</span> \u2192 ' + (
            f'<span class="to">{e(str(suggestion))}</span>'
            if suggestion is not None
            else "no single other label"
        )
        meta = f"id {e(str(row['id']))} \u00b7 score {float(row['mislabel_score']):.3f}"
        main = figure(
            row, row["label"], f'<div class="verdict">{verdict}</div><div class="meta">{meta}</div>'
        )
        others = []
        for other_id, other_label, distance in row.get("_neighbours") or []:
            info = details.get(other_id, {"id": other_id})
            others.append(
                figure(
                    info,
                    other_label,
                    f'<div class="labels"><span>{e(str(other_label))}</span></div>'
                    f'<div class="meta">id {other_id} \u00b7 distance {distance:.4f}</div>',
                )
            )
        side = (
            '<div class="others"><p class="others-title">nearest neighbours with another label</p>'
            + "".join(others)
            + "</div>"
            if others
            else '<div class="others"><p class="others-title">no neighbour with another label</p></div>'
        )
        body.append(f'<section class="item">{main}{side}</section>')
    count = len(rows)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{e(title)}</title>",
            f"<style>:root {{ --thumb: {int(thumb_px)}px; }}{GALLERY_STYLE}{_STYLE}</style>",
            "</head><body>",
            f"<h1>{e(title)}</h1>",
            f'<p class="summary">{e(note)}</p>',
            f'<p class="summary">{count} item{"" if count == 1 else "s"} shown, most suspicious first</p>',
            *body,
            "</body></html>",
            "",
        ]
    )
