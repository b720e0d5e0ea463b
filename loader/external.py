"""Bring your own embeddings (--embeddings FILE): vectors keyed by filename, no model run.

Accepted: `X.npy` (N x D) with `X.txt` beside it (N filenames, one per line); `X.npz` with arrays
`filenames` and `embeddings`; `X.parquet` with columns `filename` and `embedding` (a list of
numbers). Filenames are matched like annotation references. Vectors are L2-normalised on the
way in (cosine distance does not care, and the index needs no zero vectors); a zero or
non-finite vector fails its asset with that reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from pgsearch.loader.annotations import FileIndex
from pgsearch.loader.errors import EmbeddingsFileError


@dataclass
class ExternalVectors:
    label: str  # the file's base name
    dim: int
    rows: dict[str, int]  # scanned filename -> row
    matrix: np.ndarray  # (N, dim), possibly memory-mapped

    def vector(self, filename: str) -> tuple[np.ndarray | None, str | None]:
        row = self.rows.get(filename)
        if row is None:
            return None, f"no vector for this file in {self.label}"
        vec = np.asarray(self.matrix[row], dtype=np.float32)
        norm = float(np.linalg.norm(vec))
        if not np.all(np.isfinite(vec)) or norm == 0.0:
            return None, f"zero or non-finite vector in {self.label}"
        return vec / norm, None


def _read(path: str) -> tuple[list[str], np.ndarray]:
    ext = os.path.splitext(path)[1].lower()
    name = os.path.basename(path)
    if ext == ".npy":
        names_file = next((c for c in (path[:-4] + ".txt", path + ".txt") if os.path.isfile(c)), None)
        if names_file is None:
            raise EmbeddingsFileError(
                f"{name}: needs the filenames beside it in {os.path.basename(path[:-4])}.txt "
                "(one per line, in row order)"
            )
        try:
            matrix = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise EmbeddingsFileError(f"{name}: not a readable .npy array ({exc})") from None
        with open(names_file, encoding="utf-8") as fh:
            names = [line.rstrip("\r\n") for line in fh]
        while names and not names[-1]:
            names.pop()
        return names, matrix
    if ext == ".npz":
        try:
            archive = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise EmbeddingsFileError(f"{name}: not a readable .npz archive ({exc})") from None
        for key in ("filenames", "embeddings"):
            if key not in archive.files:
                raise EmbeddingsFileError(
                    f"{name}: missing array {key!r} (has {', '.join(archive.files) or 'none'})"
                )
        return [str(n) for n in archive["filenames"].tolist()], archive["embeddings"]
    if ext == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise EmbeddingsFileError(
                f"{name}: reading parquet needs pyarrow (pip install pyarrow)"
            ) from None
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several unrelated types for a bad file
            raise EmbeddingsFileError(
                f"{name}: not a readable parquet file ({str(exc).splitlines()[0]})"
            ) from None
        for key in ("filename", "embedding"):
            if key not in table.column_names:
                raise EmbeddingsFileError(
                    f"{name}: missing column {key!r} (has {', '.join(table.column_names)})"
                )
        names = [str(n) for n in table.column("filename").to_pylist()]
        column = table.column("embedding").combine_chunks()
        try:
            lengths = np.asarray(column.value_lengths()) if hasattr(column, "value_lengths") else None
            values = np.asarray(column.flatten(), dtype=np.float32)
        except Exception:
            raise EmbeddingsFileError(f"{name}: column 'embedding' must hold lists of numbers") from None
        if lengths is None or len(lengths) == 0 or not np.all(lengths == lengths[0]):
            raise EmbeddingsFileError(f"{name}: every 'embedding' must have the same length")
        return names, values.reshape(len(names), int(lengths[0]))
    raise EmbeddingsFileError(
        f"{name}: unknown embeddings file type; expected .npy (+ .txt), .npz or .parquet"
    )


def read_embeddings(path: str, index: FileIndex) -> ExternalVectors:
    if not os.path.isfile(path):
        raise EmbeddingsFileError(f"{path}: no such file")
    label = os.path.basename(path)
    names, matrix = _read(path)
    if matrix.ndim != 2 or matrix.shape[1] < 1:
        raise EmbeddingsFileError(
            f"{label}: expected a 2-D array of vectors, got shape {tuple(matrix.shape)}"
        )
    if matrix.shape[1] > 4000:
        raise EmbeddingsFileError(f"{label}: {matrix.shape[1]} dimensions; at most 4000 are supported")
    if len(names) != matrix.shape[0]:
        raise EmbeddingsFileError(f"{label}: {len(names)} filenames for {matrix.shape[0]} vectors")
    rows: dict[str, int] = {}
    for i, ref in enumerate(names):
        filename, why = index.resolve(ref)
        if filename is None:
            raise EmbeddingsFileError(f"{label}: row {i}: {why}")
        if filename in rows:
            raise EmbeddingsFileError(
                f"{label}: row {i}: {ref!r} has a vector already (row {rows[filename]})"
            )
        rows[filename] = i
    return ExternalVectors(label, int(matrix.shape[1]), rows, matrix)
