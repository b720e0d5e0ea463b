"""One renderer for rows, shared by every command that prints them (query, the curation
commands): a terminal table, JSON, CSV or an HTML gallery, to stdout or a file.

Rows are dicts. Text from the data is hostile input: the table escapes control and bidi
characters, CSV guards cells a spreadsheet would run as a formula, the gallery escapes HTML.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

ASSET_COLUMNS = ("id", "filename", "width", "height", "size", "status", "groups", "labels")
SHAPE_COLUMNS = ("id", "asset_id", "filename", "label", "kind", "bbox", "area")
FORMAT_BY_SUFFIX = {".html": "html", ".htm": "html", ".json": "json", ".csv": "csv"}
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
