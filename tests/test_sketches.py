"""Asset sketches (sql/functions/write_asset_sketches.sql): the embedding writer
(loader/vectors.py) keeps assets.sketches[space] equal to the sign bits of (vector - the space's
centre) as it writes, replaces and deletes vectors, and the loader's numpy sketches of new rows
(loader/sketches.py) are bit for bit what SQL's binary_quantize computes; refresh_asset_sketches
repairs vectors written around the writer. And the exact path that pre-ranks by sketch: exactly
k rows, recall >= 0.95 against numpy, exact answers when the space has no centre."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pgvector import HalfVector
from psycopg import sql

from pgsearch.loader import sketches, vectors
from pgsearch.loader import vectors as loader_vectors
from pgsearch.loader.spaces import Space
from pgsearch.translator import Catalog, EmbeddingSpace, Similarity, VectorSource, compile_query
from pgsearch.translator.paths import RERANK_BITS, rerank_count


def _space(conn: psycopg.Connection, dim: int, n: int) -> tuple[int, int, str, list[int]]:
    """A dataset with n assets (width 1..n) and an empty asset space of `dim` dimensions."""
    dataset = conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('sk') RETURNING id").fetchone()[0]
    with conn.cursor().copy("COPY pgsearch.assets (dataset_id, filename, width) FROM STDIN") as copy:
        for i in range(n):
            copy.write_row((dataset, f"s{i:05d}.jpg", i + 1))
    ids = [
        r[0]
        for r in conn.execute("SELECT id FROM pgsearch.assets WHERE dataset_id = %s ORDER BY id", (dataset,))
    ]
    model = conn.execute(
        "INSERT INTO pgsearch.embedding_models (name, dim) VALUES ('sk', %s) RETURNING id", (dim,)
    ).fetchone()[0]
    space = conn.execute(
        "SELECT pgsearch.ensure_embedding_space(%s, %s, 'asset')", (dataset, model)
    ).fetchone()[0]
    table = conn.execute(
        "SELECT table_name FROM pgsearch.embedding_spaces WHERE id = %s", (space,)
    ).fetchone()[0]
    return dataset, space, table, ids


def _t(table: str) -> sql.Identifier:
    return sql.Identifier("pgsearch", table)


def _copy(conn: psycopg.Connection, table: str, space: int, ids: list[int], vectors: np.ndarray) -> None:
    """Binary COPY straight into the partition, as the loader writes."""
    with conn.cursor().copy(
        sql.SQL("COPY {} (space_id, asset_id, embedding) FROM STDIN WITH (FORMAT BINARY)").format(_t(table))
    ) as copy:
        copy.set_types(["int8", "int8", "halfvec"])
        for asset_id, vector in zip(ids, vectors, strict=True):
            copy.write_row((space, asset_id, HalfVector(vector)))


def _bits(vectors: np.ndarray, centre: np.ndarray) -> list[str]:
    """What binary_quantize(v - centre) gives, as '0101...' strings (in half precision, as stored)."""
    diff = vectors.astype(np.float16).astype(np.float32) - centre.astype(np.float32)
    return ["".join("1" if x > 0 else "0" for x in row) for row in diff]


def _sketches(conn: psycopg.Connection, space: int, ids: list[int]) -> list[str | None]:
    rows = dict(
        conn.execute(
            "SELECT id, sketches[%s]::text FROM pgsearch.assets WHERE id = ANY(%s)", (space, ids)
        ).fetchall()
    )
    return [rows[i] for i in ids]


def _centre(conn: psycopg.Connection, space: int) -> np.ndarray | None:
    value = conn.execute(
        "SELECT sketch_center::text FROM pgsearch.embedding_spaces WHERE id = %s", (space,)
    ).fetchone()[0]
    return None if value is None else np.array([float(x) for x in value.strip("[]").split(",")])


def _loader_space(conn: psycopg.Connection, space: int, table: str, dim: int) -> Space:
    dataset, model = conn.execute(
        "SELECT dataset_id, model_id FROM pgsearch.embedding_spaces WHERE id = %s", (space,)
    ).fetchone()
    return Space(space, dataset, model, "sk", "asset", dim, table, False, False)


def test_the_writer_keeps_sketches(conn: psycopg.Connection) -> None:
    rng = np.random.default_rng(1)
    _, space, table, ids = _space(conn, 12, 6)
    writing = _loader_space(conn, space, table, 12)
    first = rng.normal(size=(4, 12)).astype(np.float32) + 0.5

    vectors.write(conn, writing, [vectors.Embedding(i, 1, v) for i, v in zip(ids[:4], first, strict=True)])
    centre = _centre(conn, space)
    assert centre is not None
    # The centre is the first batch's mean, in half precision.
    assert np.allclose(centre, first.astype(np.float16).astype(np.float32).mean(axis=0), atol=2e-3)
    assert _sketches(conn, space, ids[:4]) == _bits(first, centre)
    assert _sketches(conn, space, ids[4:]) == [None, None]

    # A later batch; the centre stays what it was.
    later = rng.normal(size=(2, 12)).astype(np.float32)
    vectors.write(conn, writing, [vectors.Embedding(i, 1, v) for i, v in zip(ids[4:], later, strict=True)])
    assert np.array_equal(_centre(conn, space), centre)
    assert _sketches(conn, space, ids[4:]) == _bits(later, centre)

    # A re-embedded asset gets the new vector's sketch; a failed one and a forgotten one lose it.
    replaced = -first[0]
    vectors.write(
        conn, writing, [vectors.Embedding(ids[0], 2, replaced), vectors.Embedding(ids[1], 2, reason="x")]
    )
    assert _sketches(conn, space, ids[:2]) == [*_bits(replaced[None, :], centre), None]
    vectors.forget(conn, [writing], ids[2:3])
    assert _sketches(conn, space, ids[2:3]) == [None]
    assert conn.execute("SELECT pgsearch.refresh_asset_sketches(%s)", (space,)).fetchone()[0] == 0

    # Vectors written around the writer leave sketches behind; the refresh finds exactly those.
    conn.execute(
        sql.SQL("UPDATE {} SET embedding = %s WHERE asset_id = ANY(%s)").format(_t(table)),
        (HalfVector(first[3] * -2), ids[3:5]),
    )
    assert conn.execute("SELECT pgsearch.refresh_asset_sketches(%s)", (space,)).fetchone()[0] == 2
    assert _sketches(conn, space, ids[3:5]) == _bits(np.stack([first[3] * -2] * 2), centre)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.lists(
        st.lists(
            st.floats(-4, 4, allow_nan=False, width=16) | st.sampled_from([0.0, -0.0, 6e-8, -6e-8, 1e-4]),
            min_size=6,
            max_size=6,
        ),
        min_size=2,
        max_size=8,
    )
)
def test_numpy_sketches_equal_sql(conn: psycopg.Connection, data: list[list[float]]) -> None:
    """The loader's sketches of new rows (numpy) against binary_quantize in SQL on the same stored
    halfvecs and centre: ties, signed zeros and subnormal differences included."""
    arr = np.array(data, dtype=np.float32)
    centre = sketches.center_of(arr)
    bits = sketches.sketch_texts(arr, centre)
    text = "[" + ",".join(repr(float(x)) for x in centre) + "]"
    for row, expected in zip(arr, bits, strict=True):
        got = conn.execute(
            "SELECT binary_quantize(%s::halfvec - %s::halfvec)::varbit::text",
            ("[" + ",".join(repr(float(x)) for x in row.astype(np.float16)) + "]", text),
        ).fetchone()[0]
        assert got == expected


N, DIM = 4000, RERANK_BITS


def _clustered(rng: np.random.Generator) -> np.ndarray:
    """Clusters in a cone (every vector shares a common direction), as image embeddings do."""
    common = rng.normal(size=DIM)
    common *= 1.2 / np.linalg.norm(common)
    centres = rng.normal(size=(60, DIM)) / np.sqrt(DIM)
    points = centres[rng.integers(0, 60, N)] + 0.5 / np.sqrt(DIM) * rng.normal(size=(N, DIM)) + common
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("triggers", [True, False], ids=["sketched", "no-centre"])  # (the writer)
def test_sketch_ranked_exact_path(conn: psycopg.Connection, triggers: bool) -> None:
    rng = np.random.default_rng(3)
    vectors = _clustered(rng)
    dataset, space_id, table, ids = _space(conn, DIM, N)
    if triggers:
        loader_vectors.write(
            conn,
            _loader_space(conn, space_id, table, DIM),
            [loader_vectors.Embedding(i, 1, v) for i, v in zip(ids, vectors, strict=True)],
        )
    else:
        # Vectors written around the embedding writer: no centre, no sketches; the exact path
        # must then rank every matching row itself.
        _copy(conn, table, space_id, ids, vectors)
    conn.execute("ANALYZE")
    assert (_centre(conn, space_id) is not None) == triggers

    space = EmbeddingSpace(id=space_id, model="sk", target="asset", dim=DIM, table=table)
    catalog = Catalog(dataset_id=dataset, dataset_name="sk", spaces=(space,))
    stored = vectors.astype(np.float16).astype(np.float64)
    widths = np.arange(1, N + 1)
    recalls = []
    # Under 2,000 matching rows the route sends the filter to the exact path; over 1,000 (the
    # rerank count) the sketches choose which rows it ranks.
    for threshold, k, dissimilar in [
        (1900, 50, False),
        (1500, 10, False),
        (1200, 100, True),
        (1800, 30, True),
    ]:
        q = vectors[rng.integers(N)] + 0.05 * rng.normal(size=DIM).astype(np.float32)
        sim = Similarity(
            space, VectorSource(q.astype(np.float16).astype(float).tolist()), dissimilar=dissimilar
        )
        compiled = compile_query(f"width <= {threshold}", catalog, similarity=sim, limit=k)
        if not dissimilar:
            assert compiled.params["rerank"] == rerank_count(k, DIM) < threshold
        got = [(r[0], r[-1]) for r in conn.execute(compiled.sql, compiled.params)]
        assert len(got) == k
        # What --sql prints for psql is the same statement: the same rows.
        assert [(r[0], r[-1]) for r in conn.execute(compiled.inline().encode())] == got
        qn = q.astype(np.float16).astype(np.float64)
        dist = 1.0 - stored @ qn / (np.linalg.norm(stored, axis=1) * np.linalg.norm(qn))
        mask = widths <= threshold
        order = np.argsort(-dist if dissimilar else dist)
        truth = [ids[i] for i in order if mask[i]][:k]
        kth = dist[ids.index(truth[-1])]
        index = {asset_id: i for i, asset_id in enumerate(ids)}
        for asset_id, reported in got:
            assert mask[index[asset_id]], "a row outside the filter came back"
            assert abs(reported - dist[index[asset_id]]) < 2e-3
        within = [
            a
            for a, _ in got
            if (dist[index[a]] >= kth - 1e-6 if dissimilar else dist[index[a]] <= kth + 1e-6)
        ]
        recalls.append(len(within) / k)
        distances = [d for _, d in got]
        assert distances == sorted(distances, reverse=dissimilar)
        route = compiled.route_statement()
        if dissimilar:
            assert route is None  # no walk to route away from
        else:
            assert route is not None and conn.execute(route, compiled.params).fetchone()[0] is True
        # Least similar first reads every matching vector: sketches rank the farthest rows poorly.
        assert ("hamming_distance" in compiled.sql.lower()) is not dissimilar
    if triggers:
        assert min(recalls) >= 0.95, recalls
    else:
        assert recalls == [1.0] * len(recalls)
