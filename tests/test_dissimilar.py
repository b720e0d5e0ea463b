"""Least similar searches on embeddings that share a common direction (as image embeddings do):
the HNSW walk towards -q does badly there, so `dissimilar_assets` and the API's dissimilar=True
must answer from the exact path. The test first shows the walk itself is poor on this data, so it
cannot pass for the wrong reason."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from pgvector import HalfVector
from psycopg import sql

import pgsearch
from pgsearch import db as database

N, K = 4000, 25


def _cone(rng: np.random.Generator, dim: int) -> np.ndarray:
    common = rng.normal(size=dim)
    common *= 1.5 / np.linalg.norm(common)
    centres = rng.normal(size=(40, dim)) / np.sqrt(dim)
    points = centres[rng.integers(0, 40, N)] + 0.4 / np.sqrt(dim) * rng.normal(size=(N, dim)) + common
    vectors = points / np.linalg.norm(points, axis=1, keepdims=True)
    return vectors.astype(np.float16).astype(np.float32)


def _dataset(conn: psycopg.Connection, dim: int) -> tuple[str, list[int], np.ndarray]:
    vectors = _cone(np.random.default_rng(dim), dim)
    dataset = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('cone') RETURNING id").fetchone()[0]
    with conn.cursor().copy("COPY pgsearch.assets (dataset_id, filename) FROM STDIN") as copy:
        for i in range(N):
            copy.write_row((dataset, f"c{i:05d}.jpg"))
    ids = [
        r[0]
        for r in conn.execute("SELECT id FROM pgsearch.assets WHERE dataset_id = %s ORDER BY id", (dataset,))
    ]
    model = conn.execute(
        "INSERT INTO pgsearch.embedding_models (name, dim) VALUES ('cone', %s) RETURNING id", (dim,)
    ).fetchone()[0]
    space = conn.execute(
        "SELECT pgsearch.ensure_embedding_space(%s, %s, 'asset')", (dataset, model)
    ).fetchone()[0]
    table = conn.execute(
        "SELECT table_name FROM pgsearch.embedding_spaces WHERE id = %s", (space,)
    ).fetchone()[0]
    with conn.cursor().copy(
        sql.SQL("COPY {} (space_id, asset_id, embedding) FROM STDIN WITH (FORMAT BINARY)").format(
            sql.Identifier("pgsearch", table)
        )
    ) as copy:
        copy.set_types(["int8", "int8", "halfvec"])
        for asset_id, vector in zip(ids, vectors, strict=True):
            copy.write_row((space, asset_id, HalfVector(vector)))
    conn.execute("SELECT pgsearch.build_embedding_index(%s)", (space,))
    conn.execute("ANALYZE")
    conn.commit()
    return table, ids, vectors


def _recall(got: list[int], ids: list[int], vectors: np.ndarray, row: int) -> float:
    distances = 1.0 - vectors @ vectors[row]
    distances[row] = -np.inf  # the query asset itself is never among the farthest
    order = np.argsort(-distances, kind="stable")[:K]
    kth = distances[order[-1]]
    index = {asset_id: i for i, asset_id in enumerate(ids)}
    return sum(1 for a in got if distances[index[a]] >= kth - 1e-3) / K


# 64 dimensions: the exact path reads every vector; 256: it ranks by sketch first.
@pytest.mark.parametrize("dim", [64, 256])
def test_least_similar_on_cone_shaped_embeddings(dsn: str, dim: int) -> None:
    with database.connect(dsn) as conn:
        table, ids, vectors = _dataset(conn, dim)
        rows = np.random.default_rng(1).choice(N, 6, replace=False)

        # The data is what makes the walk fail: towards -q, the index finds few of the farthest.
        walk = []
        conn.execute("SET hnsw.ef_search = 100")
        for row in rows:
            found = conn.execute(
                sql.SQL(
                    "SELECT asset_id FROM {} WHERE asset_id <> %(id)s"
                    " ORDER BY embedding::halfvec({}) <=> %(probe)s LIMIT %(k)s"
                ).format(sql.Identifier("pgsearch", table), sql.Literal(dim)),
                {"id": ids[row], "probe": HalfVector(-vectors[row]), "k": K},
            ).fetchall()
            walk.append(_recall([r[0] for r in found], ids, vectors, row))
        assert np.mean(walk) < 0.9, walk

        sql_recalls, api_recalls = [], []
        for row in rows:
            got = conn.execute(
                "SELECT asset_id, distance FROM pgsearch.dissimilar_assets(%s, %s)", (ids[row], K)
            ).fetchall()
            assert len(got) == K
            assert [d for _, d in got] == sorted((d for _, d in got), reverse=True)
            sql_recalls.append(_recall([a for a, _ in got], ids, vectors, row))
    with pgsearch.connect(dsn) as client:
        for row in rows:
            result = client.query(dataset="cone", similar_to=ids[row], dissimilar=True, limit=K + 1)
            got = [r["id"] for r in result if r["id"] != ids[row]][:K]
            assert len(got) == K
            api_recalls.append(_recall(got, ids, vectors, row))
    assert min(sql_recalls) >= 0.95, sql_recalls
    assert min(api_recalls) >= 0.95, api_recalls
