"""Per-file status, groups and metadata from a CSV or JSONL (or JSON array) file keyed by filename.

Columns / keys: `filename` (or `file_name`; matched like annotation references), `status`,
`groups` (a list in JSON; in CSV a string split on `;`, `|` or `,`), and every other column
into the asset's metadata. CSV values are typed: integers, decimals, true/false; empty cells
are left out. A JSON `metadata` object is merged into the metadata. A file's status here wins
over --status; its groups are added to --group.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from pgsearch.loader.annotations import FileIndex, Problems
from pgsearch.loader.errors import MetadataError

FILENAME_KEYS = ("filename", "file_name")


@dataclass
class MetadataRow:
    status: str | None = None
    groups: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def _typed(value: str) -> Any:
    text = value.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", text):
        return float(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_metadata(path: str, index: FileIndex, skip_bad: bool) -> tuple[dict[str, MetadataRow], list[str]]:
    source = os.path.basename(path)
    problems = Problems(source, skip_bad, error=MetadataError)
    if not os.path.isfile(path):
        raise MetadataError(f"{path}: no such file")
    ext = os.path.splitext(path)[1].lower()
    records: list[tuple[str, dict[str, Any], bool]] = []  # (location, record, from_csv)
    try:
        if ext == ".csv" or ext == ".tsv":
            with open(path, encoding="utf-8-sig", newline="") as fh:
                reader = csv.DictReader(fh, delimiter="\t" if ext == ".tsv" else ",")
                if reader.fieldnames is None or not any(k in reader.fieldnames for k in FILENAME_KEYS):
                    raise problems.fatal("line 1", "the header needs a 'filename' column")
                for row in reader:
                    if None in row:
                        problems.add(f"line {reader.line_num}", "more values than header columns")
                        continue
                    records.append((f"line {reader.line_num}", dict(row), True))
        elif ext in (".jsonl", ".ndjson"):
            with open(path, encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        records.append((f"line {lineno}", json.loads(line), False))
                    except json.JSONDecodeError as exc:
                        problems.add(f"line {lineno} column {exc.colno}", f"invalid JSON: {exc.msg}")
        elif ext == ".json":
            with open(path, encoding="utf-8") as fh:
                try:
                    doc = json.load(fh)
                except json.JSONDecodeError as exc:
                    raise problems.fatal(
                        f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}"
                    ) from None
            if not isinstance(doc, list):
                raise problems.fatal("", "expected a JSON array of objects (or use .jsonl)")
            records = [(f"[{i}]", rec, False) for i, rec in enumerate(doc)]
        else:
            raise MetadataError(
                f"{path}: unknown metadata file type {ext!r}; expected .csv, .tsv, .jsonl or .json"
            )
    except UnicodeDecodeError:
        raise problems.fatal("", "not UTF-8 text") from None
    except csv.Error as exc:
        raise problems.fatal("", f"malformed CSV: {exc}") from None

    out: dict[str, MetadataRow] = {}
    for where, record, from_csv in records:
        if not isinstance(record, dict):
            problems.add(where, "expected an object")
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
        if parsed is not None:
            out[filename] = parsed
    return out, problems.finish()


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
