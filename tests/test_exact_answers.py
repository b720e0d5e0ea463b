"""Filtered similarity search through the API: exactly k rows whenever at least k match, and
top-k recall >= 0.95 against brute-force numpy on the same vectors, at filter selectivities
100%, 10%, 1% and 0.1% of a 20,000-asset dataset."""

from __future__ import annotations

import json

import numpy as np
import psycopg
import pytest
from pgvector import HalfVector

import pgsearch
from pgsearch.api import Client

N = 20_000
DIM = 64
K = 100


def _clustered(rng: np.random.Generator, n: int, clusters: int = 200) -> np.ndarray:
    centres = rng.normal(size=(clusters, DIM))
    points = centres[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def big_dataset(template_dsn: str, server_url: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """One database for the module (building a 20k HNSW index once), filled with COPY."""
    from psycopg import sql

    name = "exact_answers"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_dsn.rsplit("/", 1)[1])
            )
        )
    dsn = server_url.rsplit("/", 1)[0] + "/" + name
    rng = np.random.default_rng(42)
    vectors = _clustered(rng, N)
    buckets = rng.integers(0, 1000, N)
    with pgsearch.db.connect(dsn) as conn:
        dataset = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('big') RETURNING id").fetchone()[
            0
        ]
        with conn.cursor().copy("COPY pgsearch.assets (dataset_id, filename, metadata) FROM STDIN") as copy:
            for i in range(N):
                copy.write_row((dataset, f"img_{i:05d}.jpg", json.dumps({"bucket": int(buckets[i])})))
        ids = np.array([r[0] for r in conn.execute("SELECT id FROM pgsearch.assets ORDER BY filename")])
        model = conn.execute(
            "INSERT INTO pgsearch.embedding_models (name, dim) VALUES ('synthetic', %s) RETURNING id", (DIM,)
        ).fetchone()[0]
        space = conn.execute(
            "SELECT pgsearch.ensure_embedding_space(%s, %s, 'asset')", (dataset, model)
        ).fetchone()[0]
        with conn.cursor().copy(
            "COPY pgsearch.asset_embeddings (space_id, asset_id, embedding) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int8", "halfvec"])
            for asset_id, vector in zip(ids, vectors, strict=True):
                copy.write_row((space, int(asset_id), HalfVector(vector)))
        conn.execute("SELECT pgsearch.build_embedding_index(%s)", (space,))
        conn.execute("ANALYZE pgsearch.assets")
        conn.commit()
    yield dsn, ids, vectors, buckets
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# (query, predicate over the bucket column): selectivities 100%, 10%, 1%, 0.1%
FILTERS = [
    (None, lambda b: np.ones_like(b, dtype=bool)),
    ("metadata.bucket < 100", lambda b: b < 100),
    ("metadata.bucket < 10", lambda b: b < 10),
    ("metadata.bucket == 7", lambda b: b == 7),
]


@pytest.mark.parametrize(("query", "predicate"), FILTERS, ids=["100%", "10%", "1%", "0.1%"])
@pytest.mark.parametrize("dissimilar", [False, True], ids=["similar", "dissimilar"])
def test_top_k_recall_and_exact_count(big_dataset, query, predicate, dissimilar) -> None:  # type: ignore[no-untyped-def]
    dsn, ids, vectors, buckets = big_dataset
    rng = np.random.default_rng(7)
    mask = predicate(buckets)
    recalls = []
    with pgsearch.connect(dsn) as client:
        for _ in range(5):
            q = _clustered(rng, 1)[0]
            rows = client.query(query, dataset="big", vector=q.tolist(), dissimilar=dissimilar, limit=K)
            assert len(rows) == min(K, int(mask.sum()))
            distances = 1.0 - vectors[mask] @ q
            order = np.argsort(-distances if dissimilar else distances, kind="stable")[:K]
            truth = set(ids[mask][order].tolist())
            got = [r["id"] for r in rows]
            assert len(set(got)) == len(got)
            assert all(predicate(buckets[np.searchsorted(ids, got)]))
            # distances come back ordered and equal to the true cosine distance (halfvec precision)
            returned = np.array([r["distance"] for r in rows])
            step = np.diff(returned)
            assert (step <= 1e-6).all() if dissimilar else (step >= -1e-6).all()
            expected = 1.0 - vectors[np.searchsorted(ids, got)] @ q
            np.testing.assert_allclose(returned, expected, atol=3e-3)
            recalls.append(len(truth & set(got)) / len(truth))
    assert np.mean(recalls) >= 0.95, recalls


def test_plain_psql_session_without_settings_is_still_exact(big_dataset) -> None:  # type: ignore[no-untyped-def]
    """A session without the HNSW settings (psql running `pgsearch query --sql`) still gets k rows."""
    dsn, ids, vectors, buckets = big_dataset
    q = _clustered(np.random.default_rng(3), 1)[0]
    with pgsearch.db.connect(dsn) as conn:
        client = Client(conn)  # no search settings on this connection
        rows = client.query("metadata.bucket < 100", dataset="big", vector=q.tolist(), limit=K)
    assert len(rows) == K
    mask = buckets < 100
    truth = set(ids[mask][np.argsort(1.0 - vectors[mask] @ q)[:K]].tolist())
    assert len(truth & {r["id"] for r in rows}) / K >= 0.95


def test_unfiltered_similarity_uses_the_hnsw_index(big_dataset) -> None:  # type: ignore[no-untyped-def]
    from pgsearch.api import SearchRequest

    dsn, *_ = big_dataset
    q = _clustered(np.random.default_rng(5), 1)[0]
    with pgsearch.connect(dsn) as client:
        plan = client.explain(SearchRequest(dataset="big", vector=q.tolist(), limit=10), analyze=True)
    assert "Index Scan using asset_embeddings_" in plan and "_hnsw" in plan, plan


@pytest.mark.parametrize(
    ("query", "exact"),
    [("metadata.bucket < 10", True), ("metadata.bucket == 7", True), ("metadata.bucket >= 0", False)],
    ids=["1%", "0.1%", "100%"],
)
def test_route_sends_narrow_filters_to_the_exact_path(big_dataset, query, exact) -> None:  # type: ignore[no-untyped-def]
    """The statement's page sample estimates the matching rows: a narrow filter skips the graph
    walk (which would visit ~k / selectivity rows), a broad one takes it."""
    from pgsearch.api import SearchRequest

    dsn, *_ = big_dataset
    q = _clustered(np.random.default_rng(11), 1)[0]
    with pgsearch.connect(dsn) as client:
        compiled = client.compile(SearchRequest(dataset="big", query=query, vector=q.tolist(), limit=K))
        probe = compiled.route_statement()
        assert probe is not None
        assert client.conn.execute(probe, compiled.params).fetchone() == (exact,)
        plan = client.explain(
            SearchRequest(dataset="big", query=query, vector=q.tolist(), limit=K), analyze=True
        )
    # ann's plan under the route's one-time filter: never executed when routed to the exact path
    lines = plan.splitlines()
    gate = next(i for i, line in enumerate(lines) if "One-Time Filter: (NOT" in line)
    walk = next(line for line in lines[gate + 1 :] if "->" in line)
    assert ("never executed" in walk) == exact, plan


def test_unfiltered_similarity_has_no_route(big_dataset) -> None:  # type: ignore[no-untyped-def]
    from pgsearch.api import SearchRequest

    dsn, *_ = big_dataset
    with pgsearch.connect(dsn) as client:
        compiled = client.compile(SearchRequest(dataset="big", vector=[1.0] + [0.0] * (DIM - 1), limit=K))
    assert compiled.route_statement() is None
