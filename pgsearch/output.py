"""One renderer for what commands print: rows (query, the curation listings) as a terminal
table, JSON, CSV or an HTML gallery, to stdout or a file; and the reports of status, load and
embed as text or JSON. The output formats are defined here and nowhere else.

Rows are dicts. Text from the data is hostile input: the table escapes control and bidi
characters, CSV guards cells a spreadsheet would run as a formula, the gallery escapes HTML.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
import unicodedata
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

# -f/--format of commands that print rows, and of those that print one summary.
ROW_FORMATS = ("table", "json", "csv", "html")
SUMMARY_FORMATS = ("table", "json")

ASSET_COLUMNS = ("id", "filename", "width", "height", "size", "status", "groups", "labels")
SHAPE_COLUMNS = ("id", "asset_id", "filename", "label", "kind", "bbox", "area")
FORMAT_BY_SUFFIX = {".html": "html", ".htm": "html", ".json": "json", ".csv": "csv"}
assert set(FORMAT_BY_SUFFIX.values()) <= set(ROW_FORMATS)
# Cells a spreadsheet would run as a formula (OWASP "CSV injection").
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def choose_output(
    fmt: str, output: str | None, *, format_given: bool, default_html: str, text_only: bool = False
) -> tuple[str, str | None]:
    """(format, output path) of a command that renders rows: the format follows the -o file's
    extension unless -f was given; html without -o writes `default_html` and never overwrites it;
    the path is checked writable before anything runs. text_only: the command prints text (--sql,
    --explain), which neither the extension nor the html default changes."""
    if not text_only and not format_given and output not in (None, "-"):
        assert output is not None
        fmt = FORMAT_BY_SUFFIX.get(Path(output).suffix.lower(), fmt)
    if not text_only and fmt == "html" and output is None:
        output = default_html
        if Path(output).exists():
            raise click.ClickException(
                f"{Path(output).resolve()} exists; -f html without -o does not overwrite it: "
                f"give -o FILE (-o {default_html} to overwrite it)"
            )
    if output is not None and output != "-":
        check_writable(Path(output))
    return fmt, output


def check_writable(path: Path) -> None:
    """Fails now, before anything is searched or changed, when `path` cannot be written; a file
    that did not exist is left not existing."""
    try:
        if path.is_dir():
            raise click.ClickException(f"cannot write {path}: it is a directory; -o takes a file name")
        existed = path.exists() or path.is_symlink()
        with path.open("a", encoding="utf-8"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None


def write_text(text: str, output: str | None) -> None:
    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {Path(output).resolve()}", err=True)


def emit(
    rows: list[dict[str, Any]],
    columns: Sequence[str],
    target: str,
    fmt: str,
    output: str | None,
    *,
    title: str,
    table_columns: Sequence[str] | None = None,
    html: Callable[[list[dict[str, Any]], str], str] | None = None,
) -> None:
    """Renders `rows` as `fmt` (table, json, csv, html) to stdout (output None or "-") or a file.
    columns: every column, for the CSV header when there are no rows; table_columns: those the
    table shows (default: the query's asset or shape columns, with distance when present);
    html: a page renderer (rows, title) -> html, default the gallery."""
    if fmt == "html":
        if html is None:
            from pgsearch.gallery import gallery_html

            text = gallery_html(rows, title=title)
        else:
            text = html(rows, title)
    elif fmt == "json":
        text = json.dumps([jsonable(r) for r in rows], indent=2, ensure_ascii=False) + "\n"
    elif fmt == "csv":
        text = csv_text(rows, columns)
    else:
        text = table_text(rows, target, table_columns)
    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {len(rows)} results to {Path(output).resolve()}", err=True)


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = float(value)
        out[key] = value
    return out


def _csv_value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(CSV_FORMULA_START):
        return "'" + value
    return value


def csv_text(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    fieldnames = list(rows[0]) if rows else list(columns)
    writer = csv.DictWriter(buffer, fieldnames=fieldnames)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in jsonable(row).items()})
    return buffer.getvalue()


# Characters that reorder or hide what follows them on a terminal: bidi embeddings, overrides
# and isolates, and the implicit marks.
_BIDI = {0x200E, 0x200F, 0x061C, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
# Score columns shown with four decimals in tables.
FOUR_DIGITS = {"distance", "uniqueness", "mislabel_score", "knn_distance"}
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(text: str) -> str:
    """The text with control and bidi characters written as escapes (\\n, \\x1b, \\u202e)."""
    out: list[str] = []
    for char in text:
        code = ord(char)
        if char in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[char])
        elif unicodedata.category(char) == "Cc":
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        elif code in _BIDI or unicodedata.category(char) in ("Zl", "Zp"):
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def _char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _width(text: str) -> int:
    """Columns `text` takes on a terminal (wide CJK and emoji count 2)."""
    return sum(_char_width(c) for c in text)


def _fit(text: str, width: int) -> str:
    """`text` cut to `width` columns (ending in … when cut) and padded to exactly `width`."""
    if _width(text) > width:
        kept: list[str] = []
        used = 0
        for char in text:
            w = _char_width(char)
            if used + w > width - 1:
                break
            kept.append(char)
            used += w
        text = "".join(kept) + "…"
    return text + " " * (width - _width(text))


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
        return f"{value:.4f}" if column in FOUR_DIGITS else f"{value:g}"
    return str(value)


def table_text(rows: list[dict[str, Any]], target: str, columns: Sequence[str] | None = None) -> str:
    """A terminal table of `columns` (default: the query's, with distance when present)."""
    if not rows:
        return "(no rows)\n"
    if columns is None:
        columns = list(SHAPE_COLUMNS if target == "shape" else ASSET_COLUMNS)
        if "distance" in rows[0]:
            columns.insert(2, "distance")
    columns = list(columns)
    cells = [[visible(_cell(r, c)) for c in columns] for r in rows]
    widths = [min(48, max(_width(c), *(_width(row[i]) for row in cells))) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(_fit(v, w) for v, w in zip(values, widths, strict=True))

    out = [line(columns), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(s.rstrip() for s in out) + "\n"


# -- reports: one document per command (status, load, embed), as JSON or as text -------------


def print_json(
    document: Any, *, ensure_ascii: bool = True, default: Callable[[Any], Any] | None = None
) -> None:
    """`document` as indented JSON on stdout (--json, -f json of the summary commands)."""
    click.echo(json.dumps(document, indent=2, ensure_ascii=ensure_ascii, default=default))


def print_report(document: dict[str, Any], as_json: bool, text: Callable[[dict[str, Any]], str]) -> None:
    """A command's report: JSON with --json, else its text (nothing when the text is empty)."""
    if as_json:
        print_json(document)
        return
    rendered = text(document)
    if rendered:
        click.echo(rendered)


def failed_files_command(dataset: str) -> str:
    """The command that lists a dataset's files that failed to load (the query field load_error,
    set by the loader), quoted so that it runs as printed whatever the dataset's name."""
    return f"pgsearch query {shlex.quote('load_error != null')} --dataset {shlex.quote(dataset)}"


def status_text(info: dict[str, Any]) -> str:
    """`pgsearch status`: per model, the dataset's assets and shapes done, pending and failed,
    with the failure reasons (pgsearch.loader.embed.status gives `info`)."""
    lines = [
        f"dataset {info['dataset']}: {info['assets']} assets ({info['unreadable_assets']} unreadable), "
        f"{info['shapes']} shapes"
    ]
    if info["unreadable_assets"]:
        lines.append(f"  list the unreadable ones: {failed_files_command(info['dataset'])}")
    if not info["models"]:
        command = info.get("embed_command") or "pgsearch embed --dataset NAME --model SPEC"
        lines.append(f"  no embedding model yet: `{command}` activates one")
    default = info.get("default_model")
    for m in info["models"]:
        mark = ", the default" if m["model"] == default else ""
        lines.append(
            f"  model {m['model']} ({m['dim']} dims{', text search' if m['has_text'] else ''}{mark})"
        )
        for key in ("assets", "shapes"):
            c = m[key]
            if c is None:
                continue
            index = "indexed" if c["indexed"] else "not indexed"
            lines.append(
                f"    {key}: {c['done']} done, {c['pending']} pending, {c['failed']} failed "
                f"of {c['total']} ({index})"
            )
            for r in c["reasons"]:
                examples = ", ".join(e["filename"] for e in r["examples"])
                lines.append(f"      {r['count']} x {r['reason']}  (e.g. {examples})")
    if len(info["models"]) > 1 and not any(m["model"] == default for m in info["models"]):
        lines.append(
            "  no default model: searches must name one (--model), or set one with "
            f"`pgsearch embed --dataset {shlex.quote(info['dataset'])} "
            f"--default-model {shlex.quote(info['models'][0]['model'])}`"
        )
    return "\n".join(lines)


# Failed files and dropped annotation entries a text summary lists; --json lists them all.
LISTED = 20


def load_text(d: dict[str, Any]) -> str:
    """`pgsearch load`: counts, throughput, failed files, dropped annotations
    (LoadSummary.to_dict() gives `d`)."""
    a, s, e = d["assets"], d["shapes"], d["embeddings"]
    lines = [
        f"dataset {d['dataset']}: {d['files']} files in {d['seconds']:.1f} s ({d['images_per_second']:.1f} images/s)"
        + (f", model {d['model']}" if d["model"] else ", no embeddings"),
        f"  assets: {a['new']} new, {a['updated']} updated, {a['unchanged']} unchanged, {a['failed']} failed",
        f"  shapes: {s['inserted']} inserted, {s['deleted']} replaced, {s['failed']} not embedded, "
        f"{s['skipped']} skipped",
        f"  embeddings: {e['assets']} assets, {e['shapes']} shapes",
    ]
    if d["index_built"]:
        lines.append(f"  HNSW index built on {', '.join(d['index_built'])}")
    if d["failed"]:
        lines.append(f"  failed files ({a['failed']}):")
        lines.extend(f"    {f['filename']}: {f['reason']}" for f in d["failed"][:LISTED])
        if len(d["failed"]) > LISTED:
            lines.append(f"    ... and {len(d['failed']) - LISTED} more (--json lists them)")
        lines.append(f"    every failed file of the dataset: {failed_files_command(d['dataset'])}")
    if d["dropped_annotations"]:
        lines.append(f"  dropped annotation entries ({len(d['dropped_annotations'])}):")
        lines.extend(f"    {p}" for p in d["dropped_annotations"][:LISTED])
        if len(d["dropped_annotations"]) > LISTED:
            lines.append(f"    ... and {len(d['dropped_annotations']) - LISTED} more (--json lists them)")
    if a.get("missing") or a.get("pruned"):
        gone = a.get("missing") or a.get("pruned")
        what = (
            "pruned (deleted with their shapes and vectors)"
            if a.get("pruned")
            else "kept; --prune deletes them"
        )
        lines.append(f"  gone from the disk ({gone}, {what}):")
        lines.extend(f"    {name}" for name in d.get("missing", [])[:LISTED])
        if gone > LISTED:
            lines.append(f"    ... and {gone - LISTED} more (--json lists them)")
    for model, n in d["pending_other_models"].items():
        lines.append(f"  {n} items wait for model {model}: run `pgsearch embed --dataset {d['dataset']}`")
    return "\n".join(lines)


def embed_text(d: dict[str, Any]) -> str:
    """`pgsearch embed`: per model, what was embedded and what failed (EmbedSummary.to_dict())."""
    lines: list[str] = []
    for m in d["models"]:
        lines.append(
            f"{m['model']}: assets {m['assets_done']} embedded, {m['assets_failed']} failed; "
            f"shapes {m['shapes_done']} embedded, {m['shapes_failed']} failed"
        )
        lines.extend(f"  {f['filename']}: {f['reason']}" for f in m["failed"][:LISTED])
    return "\n".join(lines)
