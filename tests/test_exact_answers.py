"""Filtered similarity search through the API: exactly k rows whenever at least k match, and
top-k recall >= 0.95 against brute-force numpy on the same vectors, at filter selectivities
100%, 10%, 1% and 0.1% of a 20,000-asset dataset; for filters that read the asset rows (an
unindexed metadata field) and for those an index answers alone (groups, status, a metadata field
with `pgsearch index add`: translator/covering.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from pgvector import HalfVector

import pgsearch
from pgsearch.api import Client
from pgsearch.indexes import add_index

N = 20_000
DIM = 256  # at least SKETCH_MIN_DIM: the exact path pre-ranks by sketch, as for CLIP models
K = 100


def _clustered(rng: np.random.Generator, n: int, clusters: int = 200) -> np.ndarray:
    centres = rng.normal(size=(clusters, DIM))
    points = centres[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def big_dataset(
    template_dsn: str, server_url: str
) -> Iterator[tuple[str, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]]:
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
    draws = rng.random((N, 4))
    with pgsearch.db.connect(dsn) as conn:
        dataset = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('big') RETURNING id").fetchone()[
            0
        ]
        with conn.cursor().copy(
            "COPY pgsearch.assets (dataset_id, filename, metadata, groups, status) FROM STDIN"
        ) as copy:
            for i in range(N):
                # indexed: the same value under a key that gets `pgsearch index add`
                meta = {"bucket": int(buckets[i]), "indexed": int(buckets[i])}
                groups = [
                    g for g, p, d in (("g10", 0.1, 0), ("g1", 0.01, 1), ("g01", 0.001, 2)) if draws[i, d] < p
                ]
                status = "to_fix" if draws[i, 3] < 0.01 else "review"
                copy.write_row((dataset, f"img_{i:05d}.jpg", json.dumps(meta), groups, status))
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
        # Written around pgsearch's writers: their derived data, as such a writer is told to add it.
        conn.execute("SELECT pgsearch.refresh_asset_sketches(%s)", (space,))
        conn.execute("SELECT pgsearch.refresh_group_members()")
        conn.execute("SELECT pgsearch.build_embedding_index(%s)", (space,))
        conn.commit()
        add_index(conn, "metadata.indexed", "number")
    with psycopg.connect(dsn, autocommit=True) as conn:
        # as the loader does: the visibility map lets index-only scans skip the rows
        conn.execute("VACUUM (ANALYZE) pgsearch.assets, pgsearch.group_members")
    yield dsn, ids, vectors, (buckets, draws)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# (query, predicate over (buckets, draws)): selectivities 100%, 10%, 1%, 0.1%
FILTERS = {
    "100%": (None, lambda b, d: np.ones_like(b, dtype=bool)),
    "10%": ("metadata.bucket < 100", lambda b, d: b < 100),
    "1%": ("metadata.bucket < 10", lambda b, d: b < 10),
    "0.1%": ("metadata.bucket == 7", lambda b, d: b == 7),
    "indexed 10%": ("metadata.indexed < 100", lambda b, d: b < 100),
    "indexed 1%": ("metadata.indexed >= 990", lambda b, d: b >= 990),
    "indexed 0.1%": ("metadata.indexed == 7", lambda b, d: b == 7),
    "groups 10%": ('"g10" in groups', lambda b, d: d[:, 0] < 0.1),
    "groups 1%": ('"g1" in groups', lambda b, d: d[:, 1] < 0.01),
    "groups 0.1%": ('"g01" in groups', lambda b, d: d[:, 2] < 0.001),
    "status 1%": ('status == "to_fix"', lambda b, d: d[:, 3] < 0.01),
}


@pytest.mark.parametrize(("query", "predicate"), list(FILTERS.values()), ids=list(FILTERS))
@pytest.mark.parametrize("dissimilar", [False, True], ids=["similar", "dissimilar"])
def test_top_k_recall_and_exact_count(big_dataset, query, predicate, dissimilar) -> None:  # type: ignore[no-untyped-def]
    dsn, ids, vectors, (buckets, draws) = big_dataset
    rng = np.random.default_rng(7)
    mask = predicate(buckets, draws)
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
            rows_got = np.searchsorted(ids, got)
            assert all(predicate(buckets[rows_got], draws[rows_got]))
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
    dsn, ids, vectors, (buckets, _) = big_dataset
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


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ('"g1" in groups', "group_members_pkey"),
        ('status == "to_fix"', "assets_dataset_status_idx"),
        ("metadata.indexed >= 990", "assets_metadata_indexed_number_"),
    ],
    ids=["groups", "status", "indexed field"],
)
def test_covered_filters_are_read_from_an_index_alone(big_dataset, query, index) -> None:  # type: ignore[no-untyped-def]
    """The exact path of these filters gets the matching ids and sketches from an index-only scan
    (translator/covering.py) and never visits the asset rows for them."""
    from pgsearch.api import SearchRequest

    dsn, *_ = big_dataset
    q = _clustered(np.random.default_rng(13), 1)[0]
    with pgsearch.connect(dsn) as client:
        plan = client.explain(
            SearchRequest(dataset="big", query=query, vector=q.tolist(), limit=K), analyze=True
        )
    lines = plan.splitlines()
    scan = next((i for i, line in enumerate(lines) if "Index Only Scan using " + index in line), None)
    assert scan is not None, plan
    fetches = next(line for line in lines[scan:] if "Heap Fetches" in line)
    assert fetches.strip() == "Heap Fetches: 0", plan
    # (the walk's branch joins assets, but the route left it never executed)
    row_reads = [line for line in lines if "Heap Scan on assets" in line or "Seq Scan on assets" in line]
    assert all("never executed" in line for line in row_reads), plan


def test_unfiltered_similarity_has_no_route(big_dataset) -> None:  # type: ignore[no-untyped-def]
    from pgsearch.api import SearchRequest

    dsn, *_ = big_dataset
    with pgsearch.connect(dsn) as client:
        compiled = client.compile(SearchRequest(dataset="big", vector=[1.0] + [0.0] * (DIM - 1), limit=K))
    assert compiled.route_statement() is None
