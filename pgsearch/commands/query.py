"""`pgsearch query`: metadata search, optionally ordered by similarity."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from pgsearch.options import dataset_option, dsn_option, output_format_option

ASSET_COLUMNS = ("id", "filename", "width", "height", "size", "status", "groups", "labels")
SHAPE_COLUMNS = ("id", "asset_id", "filename", "label", "kind", "bbox", "area")


@click.command()
@click.argument("query", required=False)
@dataset_option()
@click.option("--similar-to", metavar="FILENAME|ID", help="Order by similarity to this asset of the dataset.")
@click.option(
    "--similar-to-file", type=click.Path(dir_okay=False), help="Order by similarity to an image file."
)
@click.option("--similar-to-shape", type=int, metavar="ID", help="Order shapes by similarity to this shape.")
@click.option("--text", metavar="PROMPT", help="Order by similarity to a text prompt (CLIP-style models).")
@click.option("--dissimilar", is_flag=True, help="Least similar first (an exact scan of the matching rows).")
@click.option("--shapes", is_flag=True, help="Rows are shapes (annotations) instead of assets.")
@click.option("--model", metavar="SPEC", help="Embedding model, when the dataset has several.")
@click.option("--limit", "-n", type=click.IntRange(0, 100_000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@output_format_option("table", "json", "csv", "html")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write to FILE instead of stdout."
)
@click.option("--sql", "show_sql", is_flag=True, help="Print the statement (runnable in psql); run nothing.")
@click.option("--explain", is_flag=True, help="Print PostgreSQL's plan for the statement.")
@click.option("--add-to-group", metavar="GROUP", help="Add the assets found to GROUP.")
@click.option("--remove-from-group", metavar="GROUP", help="Remove the assets found from GROUP.")
@dsn_option
def query(
    query: str | None,
    dataset: str,
    similar_to: str | None,
    similar_to_file: str | None,
    similar_to_shape: int | None,
    text: str | None,
    dissimilar: bool,
    shapes: bool,
    model: str | None,
    limit: int,
    offset: int,
    output_format: str,
    output: str | None,
    show_sql: bool,
    explain: bool,
    add_to_group: str | None,
    remove_from_group: str | None,
    dsn: str | None,
) -> None:
    """Find assets (or shapes) with a metadata QUERY, optionally ordered by similarity.

    QUERY is the metadata query language (see docs/query-language.md); leave it out to search
    the whole dataset. Each search runs as one SQL statement.

    Examples:

        pgsearch query '(squirrel > 2 or height > 200) and "dataset2" in groups' -d demo

        pgsearch query 'status == "review"' -d demo --similar-to park_0001.jpg --limit 12

        pgsearch query -d demo --similar-to park_0001.jpg --dissimilar -f html -o far.html

        pgsearch query 'label == "car"' -d demo --shapes --format json
    """
    from pgsearch.api import SearchRequest, connect

    request = SearchRequest(
        dataset=dataset,
        query=query,
        similar_to=similar_to,
        similar_to_file=similar_to_file,
        similar_to_shape=similar_to_shape,
        text=text,
        dissimilar=dissimilar,
        shapes=shapes,
        model=model,
        limit=limit,
        offset=offset,
    )
    if add_to_group and remove_from_group:
        raise click.UsageError("--add-to-group and --remove-from-group exclude each other")
    with connect(dsn) as client:
        if show_sql:
            click.echo(client.compile(request).inline().rstrip().rstrip(";") + ";")
            return
        if explain:
            click.echo(client.explain(request))
            return
        rows = client.query(**_as_kwargs(request))
        if add_to_group or remove_from_group:
            ids = sorted({row["asset_id"] if request.target == "shape" else row["id"] for row in rows})
            group = add_to_group or remove_from_group
            assert group is not None
            if add_to_group:
                changed = client.add_to_group(dataset, ids, group)
                click.echo(f"added {changed} of {len(ids)} assets to group {group!r}", err=True)
            else:
                changed = client.remove_from_group(dataset, ids, group)
                click.echo(f"removed {changed} of {len(ids)} assets from group {group!r}", err=True)
    _emit(list(rows), request.target, output_format, output, title=_title(request))


def _as_kwargs(request: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(request)


def _title(request: Any) -> str:
    parts = [f"dataset {request.dataset}"]
    if request.query:
        parts.append(request.query)
    order = "least similar to" if request.dissimilar else "similar to"
    for prefix, value in (
        ("", request.similar_to),
        ("file ", request.similar_to_file),
        ("shape ", request.similar_to_shape),
        ("text ", request.text),
    ):
        if value is not None:
            parts.append(f"{order} {prefix}{value}")
    return " · ".join(parts)


def _emit(rows: list[dict[str, Any]], target: str, fmt: str, output: str | None, *, title: str) -> None:
    if fmt == "html":
        from pgsearch.gallery import write_gallery

        path = Path(output or "pgsearch-results.html")
        write_gallery(rows, path, title=title)
        click.echo(f"wrote {len(rows)} results to {path}", err=True)
        return
    if fmt == "json":
        text = json.dumps([_jsonable(r) for r in rows], indent=2, ensure_ascii=False) + "\n"
    elif fmt == "csv":
        text = _csv(rows)
    else:
        text = _table(rows, target)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {len(rows)} results to {output}", err=True)
    else:
        click.echo(text, nl=False)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = float(value)
        out[key] = value
    return out


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if not rows:
        return ""
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in _jsonable(row).items()}
        )
    return buffer.getvalue()


def _cell(row: dict[str, Any], column: str) -> str:
    if column == "labels":
        counts = row.get("label_counts") or {}
        return ", ".join(f"{k}×{v}" for k, v in sorted(counts.items()))
    if column == "bbox":
        if row.get("bbox_x") is None:
            return ""
        return "{:.0f},{:.0f} {:.0f}×{:.0f}".format(
            row["bbox_x"], row["bbox_y"], row["bbox_width"], row["bbox_height"]
        )
    value = row.get(column)
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4f}" if column == "distance" else f"{value:g}"
    return str(value)


def _table(rows: list[dict[str, Any]], target: str) -> str:
    if not rows:
        return "(no rows)\n"
    columns = list(SHAPE_COLUMNS if target == "shape" else ASSET_COLUMNS)
    if "distance" in rows[0]:
        columns.insert(2, "distance")
    cells = [[_cell(r, c) for c in columns] for r in rows]
    widths = [min(48, max(len(c), *(len(row[i]) for row in cells))) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(
            (v if len(v) <= w else v[: w - 1] + "…").ljust(w) for v, w in zip(values, widths, strict=True)
        )

    out = [line(columns), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(s.rstrip() for s in out) + "\n"
