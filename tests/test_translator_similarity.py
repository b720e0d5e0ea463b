"""Similarity statements: exactly min(k, matches) rows, top-k equal to brute force over the same
halfvec vectors (ties allowed), with and without the recommended HNSW session settings; the
unfiltered plan uses the HNSW index; least-similar goes through the index too."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from pgsearch import db as database
from pgsearch.search_settings import libpq_options
from pgsearch.translator import (
    AssetSource,
    Catalog,
    EmbeddingSpace,
    ShapeSource,
    Similarity,
    VectorSource,
    compile_query,
)

N, DIM = 3000, 16


def _setup(conn: psycopg.Connection) -> tuple[Catalog, np.ndarray, list[int], np.ndarray]:
    rng = np.random.default_rng(5)
    ds = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('vec') RETURNING id").fetchone()[0]
    model = conn.execute(
        "INSERT INTO pgsearch.embedding_models (name, dim) VALUES ('toy', %s) RETURNING id", (DIM,)
    ).fetchone()[0]
    space_id = conn.execute(
        "SELECT pgsearch.ensure_embedding_space(%s, %s, 'asset')", (ds, model)
    ).fetchone()[0]
    table = conn.execute(
        "SELECT table_name FROM pgsearch.embedding_spaces WHERE id = %s", (space_id,)
    ).fetchone()[0]
    bucket = rng.integers(0, 1000, N)  # width = bucket + 1: selectivity by threshold
    with conn.cursor().copy("COPY pgsearch.assets (dataset_id, filename, width) FROM STDIN") as copy:
        for i in range(N):
            copy.write_row([ds, f"v{i:05d}.jpg", int(bucket[i]) + 1])
    ids = [
        r[0] for r in conn.execute("SELECT id FROM pgsearch.assets WHERE dataset_id = %s ORDER BY id", (ds,))
    ]
    vectors = rng.normal(size=(N, DIM)).astype(np.float16)
    with conn.cursor().copy(
        "COPY pgsearch.asset_embeddings (space_id, asset_id, embedding) FROM STDIN"
    ) as copy:
        for asset_id, v in zip(ids, vectors, strict=True):
            copy.write_row([space_id, asset_id, "[" + ",".join(repr(float(x)) for x in v) + "]"])
    conn.execute("SELECT pgsearch.build_embedding_index(%s)", (space_id,))
    conn.execute("ANALYZE")
    conn.commit()
    space = EmbeddingSpace(id=space_id, model="toy", target="asset", dim=DIM, table=table)
    catalog = Catalog(dataset_id=ds, dataset_name="vec", spaces=(space,))
    widths = bucket + 1
    return catalog, vectors.astype(np.float64), ids, widths


def _brute(vectors: np.ndarray, q: np.ndarray, mask: np.ndarray) -> np.ndarray:
    qn = q / np.linalg.norm(q)
    d = 1.0 - (vectors @ qn) / np.linalg.norm(vectors, axis=1)
    return np.where(mask, d, np.nan)


def _assert_topk(
    got: list[tuple[int, float]], dist: np.ndarray, ids: list[int], k: int, descending: bool
) -> None:
    matching = int(np.count_nonzero(~np.isnan(dist)))
    assert len(got) == min(k, matching)
    if not got:
        return
    order = np.argsort(-dist if descending else dist)  # NaN (non-matching) last either way
    order = order[~np.isnan(dist[order])]
    kth = dist[order[len(got) - 1]]
    index_of = {asset_id: i for i, asset_id in enumerate(ids)}
    for asset_id, reported in got:
        i = index_of[asset_id]
        assert not np.isnan(dist[i]), "a row outside the filter came back"
        assert abs(reported - dist[i]) < 2e-3
        # Every returned row is within the true top-k up to float ties.
        assert (dist[i] <= kth + 2e-3) if not descending else (dist[i] >= kth - 2e-3)
    distances = [d for _, d in got]
    assert distances == sorted(distances, reverse=descending)


@pytest.mark.parametrize("tuned", [True, False])
def test_exact_k_at_every_selectivity(dsn: str, tuned: bool) -> None:
    with database.connect(dsn) as conn:
        catalog, vectors, ids, widths = _setup(conn)
    options = {"options": libpq_options()} if tuned else {}
    space = catalog.spaces[0]
    rng = np.random.default_rng(9)
    with psycopg.connect(dsn, **options) as conn:
        for threshold in (1000, 100, 10, 1):  # 100 %, 10 %, 1 %, 0.1 % of the rows
            for k in (10, 50):
                for dissimilar in (False, True):
                    q = rng.normal(size=DIM).astype(np.float16).astype(np.float64)
                    sim = Similarity(space, VectorSource(q.tolist()), dissimilar=dissimilar)
                    compiled = compile_query(f"width <= {threshold}", catalog, similarity=sim, limit=k)
                    got = [(r[0], r[-1]) for r in conn.execute(compiled.sql, compiled.params)]
                    dist = _brute(vectors, q, widths <= threshold)
                    _assert_topk(got, dist, ids, k, dissimilar)


def test_offset_pages_through_the_same_order(conn: psycopg.Connection) -> None:
    catalog, vectors, ids, widths = _setup(conn)
    sim = Similarity(catalog.spaces[0], AssetSource(filename="v00007.jpg"))
    whole = compile_query("width <= 500", catalog, similarity=sim, limit=30)
    rows = [r[0] for r in conn.execute(whole.sql, whole.params)]
    page = compile_query("width <= 500", catalog, similarity=sim, limit=10, offset=20)
    assert [r[0] for r in conn.execute(page.sql, page.params)] == rows[20:30]
    assert rows[0] == ids[7]  # an asset is its own nearest neighbour


def test_unfiltered_plan_uses_the_hnsw_index(conn: psycopg.Connection) -> None:
    catalog, *_ = _setup(conn)
    space = catalog.spaces[0]
    conn.execute("SET hnsw.iterative_scan = relaxed_order")
    compiled = compile_query(None, catalog, similarity=Similarity(space, AssetSource(asset_id=1)), limit=20)
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN ANALYZE " + compiled.sql, compiled.params))
    assert f"{space.table}_hnsw" in plan, plan
    # The exact path is gated by a one-time filter and never ran.
    assert "One-Time Filter" in plan and "never executed" in plan, plan
    # Least similar first is exact: no walk towards -q (tests/test_dissimilar.py).
    farthest = Similarity(space, VectorSource([1.0] * DIM), dissimilar=True)
    compiled = compile_query(None, catalog, similarity=farthest, limit=20)
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + compiled.sql, compiled.params))
    assert "hnsw" not in plan, plan


def test_dissimilar_is_the_reverse_of_similar(conn: psycopg.Connection) -> None:
    catalog, vectors, ids, widths = _setup(conn)
    space = catalog.spaces[0]
    sim = Similarity(space, AssetSource(asset_id=ids[3]), dissimilar=True)
    compiled = compile_query(None, catalog, similarity=sim, limit=5)
    got = [(r[0], r[-1]) for r in conn.execute(compiled.sql, compiled.params)]
    dist = _brute(vectors, vectors[3], np.ones(N, dtype=bool))
    _assert_topk(got, dist, ids, 5, descending=True)
    assert got[0][1] > 1.0  # least similar: cosine distance above 1


def test_shape_similarity_statement_runs(conn: psycopg.Connection) -> None:
    ds = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('s') RETURNING id").fetchone()[0]
    model = conn.execute(
        "INSERT INTO pgsearch.embedding_models (name, dim) VALUES ('t', 3) RETURNING id"
    ).fetchone()[0]
    space_id = conn.execute(
        "SELECT pgsearch.ensure_embedding_space(%s, %s, 'shape')", (ds, model)
    ).fetchone()[0]
    label = conn.execute(
        "INSERT INTO pgsearch.labels (dataset_id, name) VALUES (%s, 'cat') RETURNING id", (ds,)
    ).fetchone()[0]
    asset = conn.execute(
        "INSERT INTO pgsearch.assets (dataset_id, filename) VALUES (%s, 'a.jpg') RETURNING id", (ds,)
    ).fetchone()[0]
    shape_ids = []
    for i in range(5):
        sid = conn.execute(
            "INSERT INTO pgsearch.shapes (dataset_id, asset_id, label_id, kind) VALUES (%s, %s, %s, 'tag') RETURNING id",
            (ds, asset, label),
        ).fetchone()[0]
        shape_ids.append(sid)
        conn.execute(
            "INSERT INTO pgsearch.shape_embeddings (space_id, shape_id, embedding) VALUES (%s, %s, %s)",
            (space_id, sid, f"[1,{i},0]"),
        )
    space = EmbeddingSpace(space_id, "t", "shape", 3, f"shape_embeddings_{space_id}")
    catalog = Catalog(dataset_id=ds, labels=frozenset({"cat"}), spaces=(space,))
    compiled = compile_query(
        'label == "cat"',
        catalog,
        target="shape",
        similarity=Similarity(space, ShapeSource(shape_ids[0])),
        limit=3,
    )
    rows = conn.execute(compiled.sql, compiled.params).fetchall()
    assert [r[0] for r in rows] == shape_ids[:3]
    assert rows[0][-1] == pytest.approx(0.0, abs=1e-6)
