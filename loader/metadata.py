"""Per-file status, groups and metadata from a CSV or JSONL (or JSON array) file keyed by filename.

Columns / keys: `filename` (or `file_name`; matched like annotation references), `status`,
`groups` (a list in JSON; in CSV a string split on `;`, `|` or `,`), and every other column
into the asset's metadata. CSV values are typed: integers, decimals, true/false; empty cells
are left out. A JSON `metadata` object is merged into the metadata. A file's status here wins
over --status; its groups are added to --group.

Values PostgreSQL would refuse are found here, before anything is written, and reported with
the file and the place (`metadata.csv: line 12, column "note": NUL character ...`); with
--skip-bad-annotations the row is dropped and listed instead. Refused: a NUL in any CSV cell or
header; in JSON, NaN, Infinity (also `1e400`), a NUL or a lone surrogate in any string or key,
nesting deeper than annotations.JSON_MAX_DEPTH (or too deep to parse: that JSONL line is a
problem, a whole .json file a fatal one), integers over 4300 digits; a status or group over
annotations.INDEXED_TEXT_MAX_BYTES. Stored safely instead: a CSV number that does not fit a
double (`1e400`) or an int over 4300 digits stays the text it is; other control characters are
kept. The file is read only if it is a regular file (scan.read_text).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from pgsearch.loader.annotations import INDEXED_TEXT_MAX_BYTES, FileIndex, Problems, json_problem
from pgsearch.loader.errors import MetadataError
from pgsearch.loader.scan import FileRefused, read_text, shown_name

FILENAME_KEYS = ("filename", "file_name")


@dataclass
class MetadataRow:
    status: str | None = None
    groups: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def _typed(value: str) -> Any:
    text = value.strip()
    # A number only where it fits: an int over Python's 4300-digit conversion limit, or a float
    # that overflows to inf (jsonb has no Infinity), is kept as the text it is.
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text) if len(text.lstrip("+-")) <= 4300 else text
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", text):
        number = float(text)
        return number if math.isfinite(number) else text
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_metadata(path: str, index: FileIndex, skip_bad: bool) -> tuple[dict[str, MetadataRow], list[str]]:
    source = os.path.basename(path)
    problems = Problems(source, skip_bad, error=MetadataError)
    if not os.path.exists(path):
        raise MetadataError(f"{shown_name(path)}: no such file")
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".tsv", ".jsonl", ".ndjson", ".json"):
        raise MetadataError(
            f"{shown_name(path)}: unknown metadata file type {ext!r}; expected .csv, .tsv, .jsonl or .json"
        )
    try:
        text = read_text(path)
    except UnicodeDecodeError:
        raise problems.fatal("", "not UTF-8 text") from None
    except FileRefused as exc:
        raise problems.fatal("", f"cannot read ({exc})") from None
    except OSError as exc:
        raise problems.fatal("", f"cannot read ({exc.strerror or exc})") from None
    records: list[tuple[str, dict[str, Any], bool]] = []  # (location, record, from_csv)
    if ext in (".csv", ".tsv"):
        records = _csv_records(text, "\t" if ext == ".tsv" else ",", problems)
    elif ext in (".jsonl", ".ndjson"):
        # StringIO splits lines as open() did (\n, \r\n, \r), not at U+2028 as str.splitlines:
        # that may stand unescaped inside a JSON string.
        for lineno, line in enumerate(io.StringIO(text), start=1):
            if not line.strip():
                continue
            try:
                records.append((f"line {lineno}", json.loads(line), False))
            except json.JSONDecodeError as exc:
                problems.add(f"line {lineno} column {exc.colno}", f"invalid JSON: {exc.msg}")
            except RecursionError:
                problems.add(f"line {lineno}", "invalid JSON: nested too deeply to read")
            except ValueError:  # besides JSONDecodeError, json raises this only for int('9' * 5000)
                problems.add(f"line {lineno}", "invalid JSON: a number too long to read (over 4300 digits)")
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise problems.fatal(
                f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}"
            ) from None
        except RecursionError:
            raise problems.fatal("", "invalid JSON: nested too deeply to read") from None
        except ValueError:
            raise problems.fatal("", "invalid JSON: a number too long to read (over 4300 digits)") from None
        if not isinstance(doc, list):
            raise problems.fatal("", "expected a JSON array of objects (or use .jsonl)")
        records = [(f"[{i}]", rec, False) for i, rec in enumerate(doc)]

    out: dict[str, MetadataRow] = {}
    for where, record, from_csv in records:
        if not isinstance(record, dict):
            problems.add(where, "expected an object")
            continue
        if not from_csv:
            # Everything in a JSON record, keys too, at its place (`line 3.note[2]`); CSV cells
            # were checked as they were read.
            found = json_problem(record)
            if found is not None:
                problems.add(f"{where}{found[0]}", found[1])
                continue
        key = next((k for k in FILENAME_KEYS if k in record), None)
        ref = record.get(key) if key else None
        if not isinstance(ref, str) or not ref.strip():
            problems.add(where, "missing 'filename'")
            continue
        filename, why = index.resolve(ref)
        if filename is None:
            problems.add(f"{where}.filename", str(why))
            continue
        if filename in out:
            problems.add(f"{where}.filename", f"{ref!r} appears twice")
            continue
        parsed = _row(record, key or "filename", from_csv, where, problems)
        if parsed is not None and _storable(parsed, where, problems):
            out[filename] = parsed
    return out, problems.finish()


def _csv_records(text: str, delimiter: str, problems: Problems) -> list[tuple[str, dict[str, Any], bool]]:
    records: list[tuple[str, dict[str, Any], bool]] = []
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        if reader.fieldnames is None or not any(k in reader.fieldnames for k in FILENAME_KEYS):
            raise problems.fatal("line 1", "the header needs a 'filename' column")
        for name in reader.fieldnames:
            # A bad column name is in every row: the file is unusable, not one row.
            if "\x00" in name:
                raise problems.fatal(
                    f'line 1, column "{name}"', "NUL character (PostgreSQL text cannot store it)"
                )
        for row in reader:
            where = f"line {reader.line_num}"
            if None in row:
                problems.add(where, "more values than header columns")
                continue
            # Python's csv reads NUL since 3.11; PostgreSQL text refuses it.
            bad = next((k for k, v in row.items() if v is not None and "\x00" in v), None)
            if bad is not None:
                problems.add(f'{where}, column "{bad}"', "NUL character (PostgreSQL text cannot store it)")
                continue
            records.append((where, dict(row), True))
    except csv.Error as exc:
        raise problems.fatal("", f"malformed CSV: {exc}") from None
    return records


def _storable(row: MetadataRow, where: str, problems: Problems) -> bool:
    """Limits that only the parsed row shows: status and groups are index keys, and the merged
    metadata (a JSON `metadata` object plus the other keys) is one jsonb value."""
    if row.status is not None and not problems.text_ok(f"{where}.status", row.status, INDEXED_TEXT_MAX_BYTES):
        return False
    for i, group in enumerate(row.groups):
        if not problems.text_ok(f"{where}.groups[{i}]", group, INDEXED_TEXT_MAX_BYTES):
            return False
    return problems.json_ok(f"{where}.metadata", row.metadata)


def _row(
    record: dict[str, Any], key: str, from_csv: bool, where: str, problems: Problems
) -> MetadataRow | None:
    row = MetadataRow()
    for name, value in record.items():
        if name == key or name is None:
            continue
        if from_csv:
            if value is None or not str(value).strip():
                continue
            if name == "status":
                row.status = str(value).strip()
            elif name == "groups":
                row.groups = [g.strip() for g in re.split(r"[;|,]", str(value)) if g.strip()]
            else:
                row.metadata[name] = _typed(str(value))
            continue
        if name == "status":
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                problems.add(f"{where}.status", "expected a non-empty string")
                return None
            row.status = value.strip()
        elif name == "groups":
            groups = [value] if isinstance(value, str) else value
            if not isinstance(groups, list) or not all(isinstance(g, str) and g.strip() for g in groups):
                problems.add(f"{where}.groups", "expected a list of non-empty strings")
                return None
            row.groups = [g.strip() for g in groups]
        elif name == "metadata" and isinstance(value, dict):
            row.metadata.update(value)
        else:
            row.metadata[name] = value
    return row
