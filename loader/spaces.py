"""Embedding models and spaces in the database: one space per (dataset, model, target).

For the query layer: `dataset_spaces(conn, dataset_id)` lists a dataset's spaces with the model
name (`get_embedder(space.model)` embeds queries for it) and the partition holding the vectors
(`pgsearch.<space.table_name>`, columns asset_id|shape_id and embedding halfvec, HNSW on
`embedding::halfvec(dim)` with halfvec_cosine_ops once `indexed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from pgsearch.errors import NotFound
from pgsearch.loader.errors import ModelError

TARGETS = ("asset", "shape")


@dataclass(frozen=True)
class Space:
    id: int
    dataset_id: int
    model_id: int
    model: str  # embedding_models.name: the spec get_embedder() takes
    target: str  # 'asset' | 'shape'
    dim: int
    table_name: str  # partition in schema pgsearch
    indexed: bool
    has_text: bool


_SPACES_SQL = """
SELECT s.id, s.dataset_id, s.model_id, m.name, s.target, s.dim, s.table_name, s.indexed, m.has_text
  FROM pgsearch.embedding_spaces AS s JOIN pgsearch.embedding_models AS m ON m.id = s.model_id
 WHERE s.dataset_id = %(dataset)s AND (%(model)s::text IS NULL OR m.name = %(model)s)
   AND (%(target)s::text IS NULL OR s.target = %(target)s) AND (%(model_id)s::bigint IS NULL OR s.model_id = %(model_id)s)
 ORDER BY s.id
"""


def dataset_spaces(
    conn: psycopg.Connection, dataset_id: int, model: str | None = None, target: str | None = None
) -> list[Space]:
    """The dataset's spaces, oldest first, optionally for one model name and/or target."""
    rows = conn.execute(
        _SPACES_SQL, {"dataset": dataset_id, "model": model, "target": target, "model_id": None}
    ).fetchall()
    return [Space(*row) for row in rows]


def dataset_models(conn: psycopg.Connection, dataset_id: int) -> list[str]:
    """Model names with a space in the dataset, in activation order."""
    seen: list[str] = []
    for space in dataset_spaces(conn, dataset_id):
        if space.model not in seen:
            seen.append(space.model)
    return seen


def ensure_model(
    conn: psycopg.Connection, name: str, dim: int, has_text: bool, config: dict[str, Any]
) -> int:
    conn.execute(
        "INSERT INTO pgsearch.embedding_models (name, dim, has_text, config) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (name) DO NOTHING",
        (name, dim, has_text, Jsonb(config)),
    )
    row = conn.execute("SELECT id, dim FROM pgsearch.embedding_models WHERE name = %s", (name,)).fetchone()
    assert row is not None
    if row[1] != dim:
        raise ModelError(f"model {name} is registered with {row[1]} dimensions, these vectors have {dim}")
    return int(row[0])


def ensure_space(conn: psycopg.Connection, dataset_id: int, model_id: int, target: str) -> Space:
    conn.execute("SELECT pgsearch.ensure_embedding_space(%s, %s, %s)", (dataset_id, model_id, target))
    row = conn.execute(
        _SPACES_SQL, {"dataset": dataset_id, "model": None, "target": target, "model_id": model_id}
    ).fetchone()
    assert row is not None
    return Space(*row)


def model_id(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute("SELECT id FROM pgsearch.embedding_models WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no embedding model named {name!r}")
    return int(row[0])
