"""The SQL surface of migration 0002: commented views, search functions, the read-only role.

Data goes in with plain SQL and COPY, so these tests do not depend on the loader.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import numpy as np
import psycopg
import pytest
import sqlalchemy
from click.testing import CliRunner
from psycopg import sql

from pgsearch import migrate
from pgsearch.cli import cli

VIEWS = [
    "v_asset_groups",
    "v_assets",
    "v_curation_runs",
    "v_duplicate_groups",
    "v_label_counts",
    "v_mislabels",
    "v_neighbors",
    "v_projection_runs",
    "v_projections",
    "v_shapes",
]
SEARCH_FUNCTIONS = [
    "dissimilar_assets",
    "dissimilar_shapes",
    "search_assets",
    "search_shapes",
    "similar_assets",
    "similar_shapes",
]


def _one(conn: psycopg.Connection, query: str, params: tuple[object, ...] = ()) -> object:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _small_dataset(conn: psycopg.Connection) -> dict[str, int]:
    """Two datasets; 'street' has three assets, shapes, groups and two projection runs."""
    ids: dict[str, int] = {}
    ids["street"] = _one(conn, "INSERT INTO pgsearch.datasets (name) VALUES ('street') RETURNING id")
    ids["other"] = _one(conn, "INSERT INTO pgsearch.datasets (name) VALUES ('other') RETURNING id")
    assets = [
        (
            "a.jpg",
            "/img/a.jpg",
            640,
            480,
            1000,
            "JPEG",
            "review",
            ["train", "night"],
            '{"camera": "x1"}',
            None,
        ),
        ("b.png", "/img/b.png", 100, 50, 2000, "PNG", "none", [], "{}", None),
        (
            "c.jpg",
            "/img/c.jpg",
            None,
            None,
            5,
            "JPEG",
            "to_fix",
            ["val"],
            '{"camera": "x2", "iso": 800}',
            "cannot identify image file",
        ),
    ]
    for name, path, w, h, size, fmt, status, groups, meta, err in assets:
        ids[name] = _one(
            conn,
            "INSERT INTO pgsearch.assets (dataset_id, filename, path, width, height, size, format, status,"
            " groups, metadata, load_error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (ids["street"], name, path, w, h, size, fmt, status, groups, meta, err),
        )
    ids["z.jpg"] = _one(
        conn,
        "INSERT INTO pgsearch.assets (dataset_id, filename, groups) VALUES (%s, 'z.jpg', '{train}')"
        " RETURNING id",
        (ids["other"],),
    )
    for label in ("car", "person"):
        ids[label] = _one(
            conn,
            "INSERT INTO pgsearch.labels (dataset_id, name) VALUES (%s, %s) RETURNING id",
            (ids["street"], label),
        )
    with conn.cursor().copy(
        "COPY pgsearch.shapes (dataset_id, asset_id, label_id, kind, bbox_x, bbox_y, bbox_width, bbox_height,"
        " area, attributes) FROM STDIN"
    ) as copy:
        copy.write_row(
            (ids["street"], ids["a.jpg"], ids["car"], "bbox", 1, 2, 30, 40, 1200, '{"occluded": true}')
        )
        copy.write_row((ids["street"], ids["a.jpg"], ids["car"], "bbox", 5, 5, 10, 10, 100, "{}"))
        copy.write_row((ids["street"], ids["a.jpg"], ids["person"], "bbox", 0, 0, 1, 1, 1, "{}"))
        copy.write_row(
            (ids["street"], ids["b.png"], ids["person"], "tag", None, None, None, None, None, "{}")
        )
    # Shapes written around pgsearch's loader: their label counts, as such a writer adds them.
    conn.execute("SELECT pgsearch.refresh_label_counts(ARRAY(SELECT id FROM pgsearch.assets))")
    old_run = _one(
        conn,
        "INSERT INTO pgsearch.projection_runs (dataset_id, target, method) VALUES"
        " (%s, 'asset', 'umap') RETURNING id",
        (ids["street"],),
    )
    new_run = _one(
        conn,
        "INSERT INTO pgsearch.projection_runs (dataset_id, target, method, params) VALUES"
        " (%s, 'asset', 'umap', '{\"n_neighbors\": 5}') RETURNING id",
        (ids["street"],),
    )
    ids["old_run"], ids["new_run"] = old_run, new_run  # type: ignore[assignment]
    conn.execute(
        "INSERT INTO pgsearch.projection_points (run_id, item_id, x, y, cluster) VALUES"
        " (%s, %s, 9, 9, 9), (%s, %s, 1.5, -2.5, 0), (%s, %s, 3, 4, -1)",
        (old_run, ids["a.jpg"], new_run, ids["a.jpg"], new_run, ids["b.png"]),
    )
    return ids  # type: ignore[return-value]


def test_views_return_the_right_rows(conn: psycopg.Connection) -> None:
    ids = _small_dataset(conn)
    rows = conn.execute(
        "SELECT dataset, filename, path, width, height, size_bytes, format, status, groups, metadata,"
        " label_counts, annotation_count, load_error, x, y, cluster"
        " FROM pgsearch.v_assets ORDER BY asset_id"
    ).fetchall()
    assert rows == [
        (
            "street",
            "a.jpg",
            "/img/a.jpg",
            640,
            480,
            1000,
            "JPEG",
            "review",
            ["train", "night"],
            {"camera": "x1"},
            {"car": 2, "person": 1},
            3,
            None,
            1.5,
            -2.5,
            0,
        ),
        (
            "street",
            "b.png",
            "/img/b.png",
            100,
            50,
            2000,
            "PNG",
            "none",
            [],
            {},
            {"person": 1},
            1,
            None,
            3.0,
            4.0,
            -1,
        ),
        (
            "street",
            "c.jpg",
            "/img/c.jpg",
            None,
            None,
            5,
            "JPEG",
            "to_fix",
            ["val"],
            {"camera": "x2", "iso": 800},
            {},
            0,
            "cannot identify image file",
            None,
            None,
            None,
        ),
        (
            "other",
            "z.jpg",
            None,
            None,
            None,
            None,
            None,
            "none",
            ["train"],
            {},
            {},
            0,
            None,
            None,
            None,
            None,
        ),
    ]
    assert [r[0] for r in conn.execute("SELECT asset_id FROM pgsearch.v_assets ORDER BY asset_id")] == [
        ids["a.jpg"],
        ids["b.png"],
        ids["c.jpg"],
        ids["z.jpg"],
    ]

    shapes = conn.execute(
        "SELECT dataset, asset_id, filename, path, label, kind, bbox_x, bbox_y, bbox_width, bbox_height, area,"
        " attributes, asset_status FROM pgsearch.v_shapes ORDER BY shape_id"
    ).fetchall()
    assert shapes == [
        (
            "street",
            ids["a.jpg"],
            "a.jpg",
            "/img/a.jpg",
            "car",
            "bbox",
            1,
            2,
            30,
            40,
            1200,
            {"occluded": True},
            "review",
        ),
        ("street", ids["a.jpg"], "a.jpg", "/img/a.jpg", "car", "bbox", 5, 5, 10, 10, 100, {}, "review"),
        ("street", ids["a.jpg"], "a.jpg", "/img/a.jpg", "person", "bbox", 0, 0, 1, 1, 1, {}, "review"),
        (
            "street",
            ids["b.png"],
            "b.png",
            "/img/b.png",
            "person",
            "tag",
            None,
            None,
            None,
            None,
            None,
            {},
            "none",
        ),
    ]

    counts = conn.execute(
        "SELECT dataset, asset_id, filename, label, count FROM pgsearch.v_label_counts ORDER BY asset_id, label"
    ).fetchall()
    assert counts == [
        ("street", ids["a.jpg"], "a.jpg", "car", 2),
        ("street", ids["a.jpg"], "a.jpg", "person", 1),
        ("street", ids["b.png"], "b.png", "person", 1),
    ]
    # Long form agrees with an aggregate over the shapes themselves.
    assert (
        counts
        == conn.execute(
            "SELECT dataset, asset_id, filename, label, count(*)::int FROM pgsearch.v_shapes"
            " GROUP BY 1, 2, 3, 4 ORDER BY 2, 4"
        ).fetchall()
    )

    groups = conn.execute(
        "SELECT dataset, asset_id, filename, group_name FROM pgsearch.v_asset_groups ORDER BY asset_id, group_name"
    ).fetchall()
    assert groups == [
        ("street", ids["a.jpg"], "a.jpg", "night"),
        ("street", ids["a.jpg"], "a.jpg", "train"),
        ("street", ids["c.jpg"], "c.jpg", "val"),
        ("other", ids["z.jpg"], "z.jpg", "train"),
    ]

    points = conn.execute(
        "SELECT run_id, dataset, target, model, method, item_id, x, y, cluster, is_latest"
        " FROM pgsearch.v_projections ORDER BY run_id, item_id"
    ).fetchall()
    assert points == [
        (ids["old_run"], "street", "asset", None, "umap", ids["a.jpg"], 9, 9, 9, False),
        (ids["new_run"], "street", "asset", None, "umap", ids["a.jpg"], 1.5, -2.5, 0, True),
        (ids["new_run"], "street", "asset", None, "umap", ids["b.png"], 3, 4, -1, True),
    ]


def test_every_view_and_column_has_a_comment(conn: psycopg.Connection) -> None:
    views = [
        r[0]
        for r in conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'pgsearch' ORDER BY viewname")
    ]
    assert views == VIEWS
    missing = conn.execute(
        """SELECT c.relname, a.attname
             FROM pg_class AS c
             JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum >= 0 AND NOT a.attisdropped
            WHERE c.relnamespace = 'pgsearch'::regnamespace AND c.relkind = 'v'
              AND a.attnum > 0
              AND coalesce(col_description(c.oid, a.attnum), '') = ''
           UNION ALL
           SELECT c.relname, NULL FROM pg_class AS c
            WHERE c.relnamespace = 'pgsearch'::regnamespace AND c.relkind = 'v'
              AND coalesce(obj_description(c.oid, 'pg_class'), '') = ''"""
    ).fetchall()
    assert missing == []
    undocumented = conn.execute(
        "SELECT proname FROM pg_proc WHERE pronamespace = 'pgsearch'::regnamespace AND proname = ANY(%s)"
        " AND coalesce(obj_description(oid, 'pg_proc'), '') = ''",
        (SEARCH_FUNCTIONS,),
    ).fetchall()
    assert undocumented == []


def test_sqlalchemy_inspector_sees_views_and_comments(dsn: str) -> None:
    engine = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        inspector = sqlalchemy.inspect(engine)
        assert sorted(inspector.get_view_names(schema="pgsearch")) == VIEWS
        for view in VIEWS:
            assert inspector.get_table_comment(view, schema="pgsearch")["text"]
            columns = inspector.get_columns(view, schema="pgsearch")
            assert columns, view
            assert all(column.get("comment") for column in columns), view
        by_name = {c["name"]: c for c in inspector.get_columns("v_assets", schema="pgsearch")}
        assert "annotation status" in by_name["status"]["comment"].lower()
    finally:
        engine.dispose()


# -- search functions ---------------------------------------------------------------------------

DIM = 48


def _model(conn: psycopg.Connection, name: str, dim: int = DIM) -> int:
    return int(
        _one(
            conn,
            "INSERT INTO pgsearch.embedding_models (name, dim) VALUES (%s, %s) RETURNING id",
            (name, dim),
        )
    )


def _vectors_dataset(conn: psycopg.Connection, n: int, seed: int = 0) -> tuple[int, np.ndarray, np.ndarray]:
    """n assets with random vectors in one indexed space; returns (dataset id, asset ids, vectors)
    with the vectors as stored (rounded to half precision)."""
    rng = np.random.default_rng(seed)
    dataset = int(_one(conn, "INSERT INTO pgsearch.datasets (name) VALUES ('vecs') RETURNING id"))
    with conn.cursor().copy("COPY pgsearch.assets (dataset_id, filename) FROM STDIN") as copy:
        for i in range(n):
            copy.write_row((dataset, f"img_{i:05d}.jpg"))
    ids = np.array(
        [
            r[0]
            for r in conn.execute(
                "SELECT id FROM pgsearch.assets WHERE dataset_id = %s ORDER BY filename", (dataset,)
            )
        ]
    )
    vectors = rng.standard_normal((n, DIM)).astype(np.float16).astype(np.float32)
    space = _one(
        conn, "SELECT pgsearch.ensure_embedding_space(%s, %s, 'asset')", (dataset, _model(conn, "m1"))
    )
    with conn.cursor().copy(
        "COPY pgsearch.asset_embeddings (space_id, asset_id, embedding) FROM STDIN"
    ) as copy:
        for asset_id, vector in zip(ids, vectors, strict=True):
            copy.write_row((space, int(asset_id), "[" + ",".join(map(repr, vector.tolist())) + "]"))
    conn.execute("SELECT pgsearch.build_embedding_index(%s)", (space,))
    conn.execute("ANALYZE pgsearch.assets")
    return dataset, ids, vectors


def _cosine_distances(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)
    return 1.0 - (vectors @ query) / norms


def _check_top_k(
    got: list[tuple[int, float]], ids: np.ndarray, true: np.ndarray, k: int, farthest: bool = False
) -> float:
    """Exactly k rows, true distances reported, and recall against the brute-force top-k where
    ties at the k-th distance count as hits. Returns the recall."""
    assert len(got) == k
    by_id = dict(zip(ids.tolist(), true.tolist(), strict=True))
    for item, distance in got:
        assert distance == pytest.approx(by_id[item], abs=2e-3)
    order = np.argsort(-true if farthest else true, kind="stable")[:k]
    kth = true[order[-1]]
    expected = set(ids[order].tolist())
    tie = (lambda d: d >= kth - 1e-3) if farthest else (lambda d: d <= kth + 1e-3)
    hits = sum(1 for item, _ in got if item in expected or tie(by_id[item]))
    return hits / k


def test_similar_and_dissimilar_assets_agree_with_numpy(conn: psycopg.Connection) -> None:
    n, k = 3000, 25
    _, ids, vectors = _vectors_dataset(conn, n)
    hnsw = _one(
        conn,
        "SELECT c.oid FROM pg_class c JOIN pgsearch.embedding_spaces s"
        " ON c.relname = s.table_name || '_hnsw'",
    )
    recalls = []
    for row in np.random.default_rng(1).choice(n, 12, replace=False):
        query_id, others = int(ids[row]), np.delete(np.arange(n), row)
        true = _cosine_distances(vectors[others], vectors[row])
        scans = _one(conn, "SELECT pg_stat_get_xact_numscans(%s)", (hnsw,))
        got = conn.execute(
            "SELECT asset_id, distance FROM pgsearch.similar_assets(%s, %s)", (query_id, k)
        ).fetchall()
        assert _one(conn, "SELECT pg_stat_get_xact_numscans(%s)", (hnsw,)) > scans  # type: ignore[operator]
        assert query_id not in {item for item, _ in got}
        assert [d for _, d in got] == sorted(d for _, d in got)
        recalls.append(_check_top_k(got, ids[others], true, k))

        scans = _one(conn, "SELECT pg_stat_get_xact_numscans(%s)", (hnsw,))
        got = conn.execute(
            "SELECT asset_id, distance FROM pgsearch.dissimilar_assets(%s, %s)", (query_id, k)
        ).fetchall()
        # Exact: a walk towards -q finds few of the farthest (tests/test_dissimilar.py).
        assert _one(conn, "SELECT pg_stat_get_xact_numscans(%s)", (hnsw,)) == scans
        assert [d for _, d in got] == sorted((d for _, d in got), reverse=True)
        assert all(d > 1.0 for _, d in got)  # the far side of the sphere, true cosine distance
        recalls.append(_check_top_k(got, ids[others], true, k, farthest=True))
    assert min(recalls) >= 0.96, recalls
    assert np.mean(recalls) >= 0.995, recalls

    # A vector from outside: search_assets.
    query = np.random.default_rng(2).standard_normal(DIM).astype(np.float16).astype(np.float32)
    got = conn.execute(
        "SELECT asset_id, distance FROM pgsearch.search_assets('vecs', %s::vector, %s)",
        ("[" + ",".join(map(repr, query.tolist())) + "]", k),
    ).fetchall()
    assert _check_top_k(got, ids, _cosine_distances(vectors, query), k) >= 0.96


def test_exactly_k_rows_even_beyond_the_index_reach(conn: psycopg.Connection) -> None:
    _, ids, vectors = _vectors_dataset(conn, 300)
    # k beyond what the ANN path returns with a tiny max_scan_tuples would be short without the
    # exact fallback; the function's own SET clause must win over the session's setting.
    conn.execute("SET hnsw.max_scan_tuples = 1")
    got = conn.execute(
        "SELECT asset_id, distance FROM pgsearch.similar_assets(%s, 250)", (int(ids[0]),)
    ).fetchall()
    true = _cosine_distances(vectors[1:], vectors[0])
    assert _check_top_k(got, ids[1:], true, 250) >= 0.99
    # More than there are: all others, once each.
    got = conn.execute("SELECT asset_id FROM pgsearch.similar_assets(%s, 1000)", (int(ids[0]),)).fetchall()
    assert sorted(r[0] for r in got) == sorted(ids[1:].tolist())
    assert conn.execute("SELECT * FROM pgsearch.similar_assets(%s, 0)", (int(ids[0]),)).fetchall() == []
    # The caller's session settings are untouched.
    assert _one(conn, "SHOW hnsw.max_scan_tuples") == "1"


def test_similar_shapes(conn: psycopg.Connection) -> None:
    rng = np.random.default_rng(5)
    ids = _small_dataset(conn)
    with conn.cursor().copy(
        "COPY pgsearch.shapes (dataset_id, asset_id, label_id, kind, bbox_x, bbox_y, bbox_width, bbox_height)"
        " FROM STDIN"
    ) as copy:
        for i in range(400):
            copy.write_row(
                (ids["street"], ids["b.png"], ids["car" if i % 2 else "person"], "bbox", i, 0, 5, 5)
            )
    conn.execute("SELECT pgsearch.refresh_label_counts(ARRAY(SELECT id FROM pgsearch.assets))")
    shape_ids = np.array([r[0] for r in conn.execute("SELECT id FROM pgsearch.shapes ORDER BY id")])
    vectors = rng.standard_normal((len(shape_ids), DIM)).astype(np.float16).astype(np.float32)
    space = _one(
        conn,
        "SELECT pgsearch.ensure_embedding_space(%s, %s, 'shape')",
        (ids["street"], _model(conn, "crops")),
    )
    with conn.cursor().copy(
        "COPY pgsearch.shape_embeddings (space_id, shape_id, embedding) FROM STDIN"
    ) as copy:
        for shape_id, vector in zip(shape_ids, vectors, strict=True):
            copy.write_row((space, int(shape_id), "[" + ",".join(map(repr, vector.tolist())) + "]"))
    conn.execute("SELECT pgsearch.build_embedding_index(%s)", (space,))
    labels = dict(
        conn.execute("SELECT s.id, l.name FROM pgsearch.shapes s JOIN pgsearch.labels l ON l.id = s.label_id")
    )
    for row in (0, 17, 399):
        others = np.delete(np.arange(len(shape_ids)), row)
        true = _cosine_distances(vectors[others], vectors[row])
        got = conn.execute(
            "SELECT shape_id, distance, label FROM pgsearch.similar_shapes(%s, 10)", (int(shape_ids[row]),)
        ).fetchall()
        assert all(labels[s] == label for s, _, label in got)
        assert _check_top_k([(s, d) for s, d, _ in got], shape_ids[others], true, 10) >= 0.9
        got = conn.execute(
            "SELECT shape_id, distance FROM pgsearch.dissimilar_shapes(%s, 10)", (int(shape_ids[row]),)
        ).fetchall()
        assert _check_top_k(got, shape_ids[others], true, 10, farthest=True) >= 0.9


def test_several_models_need_a_name(conn: psycopg.Connection) -> None:
    dataset, ids, vectors = _vectors_dataset(conn, 50)
    second = _one(
        conn, "SELECT pgsearch.ensure_embedding_space(%s, %s, 'asset')", (dataset, _model(conn, "m2"))
    )
    conn.execute(
        "INSERT INTO pgsearch.asset_embeddings SELECT %s, asset_id, embedding FROM pgsearch.asset_embeddings",
        (second,),
    )
    conn.commit()
    with pytest.raises(psycopg.errors.InvalidParameterValue) as info:
        conn.execute("SELECT * FROM pgsearch.similar_assets(%s)", (int(ids[0]),))
    assert (
        info.value.diag.message_primary == 'dataset "vecs" has asset embeddings from several models: m1, m2'
    )
    assert info.value.diag.message_hint == "name one, e.g. model => 'm1'"
    conn.rollback()
    assert (
        len(conn.execute("SELECT * FROM pgsearch.similar_assets(%s, 5, 'm2')", (int(ids[0]),)).fetchall())
        == 5
    )
    assert (
        len(
            conn.execute(
                "SELECT * FROM pgsearch.similar_assets(%s, model => 'm1')", (int(ids[0]),)
            ).fetchall()
        )
        == 10
    )
    with pytest.raises(psycopg.errors.InvalidParameterValue, match='no asset embeddings from model "nope"'):
        conn.execute("SELECT * FROM pgsearch.similar_assets(%s, 5, 'nope')", (int(ids[0]),))
    conn.rollback()
    with pytest.raises(psycopg.errors.NoDataFound, match="asset -1 does not exist"):
        conn.execute("SELECT * FROM pgsearch.similar_assets(-1)")
    conn.rollback()
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="3 dimensions"):
        conn.execute("SELECT * FROM pgsearch.search_assets('vecs', '[1,2,3]', 5, 'm1')")
    conn.rollback()
    with pytest.raises(psycopg.errors.NoDataFound, match='dataset "nope" does not exist'):
        conn.execute("SELECT * FROM pgsearch.search_assets('nope', '[1,2,3]')")
    conn.rollback()


def test_query_vectors_are_checked_and_scale_free(conn: psycopg.Connection) -> None:
    """A vector from outside: NULL and all-zero ones are refused (they have no direction); any
    other scale gives the same rows and distances, even beyond halfvec's range or precision."""
    _, ids, vectors = _vectors_dataset(conn, 200)
    conn.commit()
    search = "SELECT asset_id, distance FROM pgsearch.search_assets('vecs', %s::vector, 7)"
    shapes = "SELECT * FROM pgsearch.search_shapes('vecs', %s::vector, 7)"
    for statement in (search, shapes):
        with pytest.raises(psycopg.errors.NullValueNotAllowed, match="the query vector is NULL"):
            conn.execute(statement, (None,))
        conn.rollback()
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="all zeros"):
        conn.execute(search, ("[" + ",".join(["0"] * DIM) + "]",))
    conn.rollback()
    query = vectors[3] + 0.1
    expected = conn.execute(search, ("[" + ",".join(map(repr, query.tolist())) + "]",)).fetchall()
    assert len(expected) == 7
    for scale in (1e-9, 1e6):
        scaled = conn.execute(search, ("[" + ",".join(repr(x * scale) for x in query.tolist()) + "]",))
        got = scaled.fetchall()
        assert [a for a, _ in got] == [a for a, _ in expected]
        assert [d for _, d in got] == pytest.approx([d for _, d in expected], abs=2e-3)
    # k near 2^31: no overflow in the ef_search arithmetic, every other asset comes back.
    huge = conn.execute("SELECT count(*) FROM pgsearch.similar_assets(%s, 2147483647)", (int(ids[0]),))
    assert huge.fetchone()[0] == 199  # type: ignore[index]


def test_an_unreadable_asset_says_why_it_has_no_embedding(conn: psycopg.Connection) -> None:
    _vectors_dataset(conn, 20)
    broken = _one(
        conn,
        "INSERT INTO pgsearch.assets (dataset_id, filename, load_error)"
        " SELECT id, 'broken.jpg', 'cannot identify image file' FROM pgsearch.datasets RETURNING id",
    )
    conn.commit()
    with pytest.raises(psycopg.errors.NoDataFound) as info:
        conn.execute("SELECT * FROM pgsearch.similar_assets(%s)", (broken,))
    assert info.value.diag.message_primary == (
        f"asset {broken} has no embedding: its file could not be read (cannot identify image file)"
    )
    conn.rollback()


# -- read-only role -----------------------------------------------------------------------------


@pytest.fixture
def reader_role(server_url: str, dsn: str) -> Iterator[str]:
    role = f"reader_{uuid.uuid4().hex[:8]}"
    yield role
    # Roles are cluster-wide: drop this one's privileges in the test database, then the role.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_grant_reader_reads_views_and_cannot_write(
    conn: psycopg.Connection, dsn: str, reader_role: str, role_dsn: Callable[[str, str, str], str]
) -> None:
    dataset, ids, _ = _vectors_dataset(conn, 60)
    conn.commit()
    runner = CliRunner()
    for _ in range(2):  # idempotent
        result = runner.invoke(cli, ["db", "grant-reader", reader_role, "--password", 'it\'s "hostile"'])
        assert result.exit_code == 0, result.output
    assert "may read 10 views" in result.output
    assert "may call 6 search functions" in result.output
    assert "sees every dataset, present and future (no --dataset given)" in result.output

    reader_dsn = role_dsn(dsn, reader_role, 'it\'s "hostile"')
    with psycopg.connect(reader_dsn, autocommit=True) as reader:
        for view in VIEWS:
            reader.execute(
                sql.SQL("SELECT * FROM pgsearch.{} LIMIT 5").format(sql.Identifier(view))
            ).fetchall()
        assert _one(reader, "SELECT count(*) FROM pgsearch.v_assets") == 60
        assert (
            len(reader.execute("SELECT * FROM pgsearch.similar_assets(%s, 7)", (int(ids[0]),)).fetchall())
            == 7
        )
        assert (
            len(reader.execute("SELECT * FROM pgsearch.dissimilar_assets(%s, 7)", (int(ids[0]),)).fetchall())
            == 7
        )
        forbidden = [
            "INSERT INTO pgsearch.assets (dataset_id, filename) VALUES (1, 'x')",
            "UPDATE pgsearch.assets SET status = 'x'",
            "DELETE FROM pgsearch.assets",
            "SELECT pgsearch.drop_dataset('vecs')",
            "CREATE TABLE pgsearch.mine (x int)",
        ]
        for statement in forbidden:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute(statement)  # type: ignore[arg-type]
        # The views are not updatable, and the reader holds no write privilege on them either.
        writes = _one(
            reader,
            "SELECT count(*) FROM information_schema.role_table_grants"
            " WHERE grantee = current_user AND privilege_type <> 'SELECT'",
        )
        assert writes == 0
    assert _one(conn, "SELECT count(*) FROM pgsearch.assets WHERE dataset_id = %s", (dataset,)) == 60


def test_grant_reader_refuses_a_superuser(dsn: str) -> None:
    result = CliRunner().invoke(cli, ["db", "grant-reader", "postgres"])
    assert result.exit_code == 1
    assert "superuser" in result.output and "Traceback" not in result.output


def test_grant_reader_takes_an_existing_role_down_to_reading(
    conn: psycopg.Connection, dsn: str, reader_role: str, role_dsn: Callable[[str, str, str], str]
) -> None:
    """A NOLOGIN role that may write pgsearch's tables, run drop_dataset and create in the schema
    leaves grant-reader as a LOGIN reader, with the rows intact and every write refused."""
    _vectors_dataset(conn, 30)
    ident = sql.Identifier(reader_role)
    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident))
    for statement in (
        "GRANT INSERT, UPDATE, DELETE, SELECT ON ALL TABLES IN SCHEMA pgsearch TO {}",
        "GRANT USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA pgsearch TO {}",
        "GRANT UPDATE (status) ON pgsearch.assets TO {}",
        "GRANT CREATE ON SCHEMA pgsearch TO {}",
        "GRANT EXECUTE ON FUNCTION pgsearch.build_embedding_index TO {}",
    ):
        conn.execute(sql.SQL(statement).format(ident))  # type: ignore[arg-type]
    conn.commit()
    result = CliRunner().invoke(cli, ["db", "grant-reader", reader_role, "--password", "reader-secret"])
    assert result.exit_code == 0, result.output
    assert f"role {reader_role}: exists, may now log in" in result.output
    assert "revoked" in result.output and "on pgsearch.assets" in result.output

    assert _one(conn, "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (reader_role,)) is True
    reader_dsn = role_dsn(dsn, reader_role, "reader-secret")
    with psycopg.connect(reader_dsn, autocommit=True) as reader:
        assert _one(reader, "SELECT count(*) FROM pgsearch.v_assets") == 30
        for statement in (
            "INSERT INTO pgsearch.assets (dataset_id, filename) VALUES (1, 'x')",
            "UPDATE pgsearch.assets SET status = 'x'",
            "DELETE FROM pgsearch.labels",
            "SELECT nextval('pgsearch.assets_id_seq')",
            "CREATE TABLE pgsearch.mine (x int)",
            "SELECT pgsearch.drop_dataset('vecs')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute(statement)  # type: ignore[arg-type]
    grants = _one(
        conn,
        "SELECT count(*) FROM information_schema.role_table_grants"
        " WHERE grantee = %s AND privilege_type <> 'SELECT'",
        (reader_role,),
    )
    assert grants == 0
    # SELECT on a table means rows behind row-level security: no partition without it is granted.
    unguarded = _one(
        conn,
        "SELECT count(*) FROM pg_class AS c CROSS JOIN aclexplode(c.relacl) AS a"
        " WHERE c.relnamespace = 'pgsearch'::regnamespace AND c.relkind = 'r' AND c.relispartition"
        " AND NOT c.relrowsecurity AND a.grantee = %s::regrole",
        (reader_role,),
    )
    assert unguarded == 0
    assert _one(conn, "SELECT count(*) FROM pgsearch.assets") == 30
    again = CliRunner().invoke(cli, ["db", "grant-reader", reader_role])
    assert again.exit_code == 0 and "revoked" not in again.output and "may now log in" not in again.output


def test_grant_reader_refuses_a_role_with_powers_and_changes_nothing(
    conn: psycopg.Connection, reader_role: str
) -> None:
    ident = sql.Identifier(reader_role)
    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN CREATEDB CREATEROLE").format(ident))
    conn.execute(sql.SQL("GRANT INSERT ON pgsearch.assets TO {}").format(ident))
    conn.commit()
    result = CliRunner().invoke(cli, ["db", "grant-reader", reader_role])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "CREATEDB, CREATEROLE" in result.output and "NOCREATEDB NOCREATEROLE" in result.output
    row = conn.execute(
        "SELECT rolcanlogin, rolcreatedb, has_table_privilege(oid, 'pgsearch.assets', 'INSERT')"
        " FROM pg_roles WHERE rolname = %s",
        (reader_role,),
    ).fetchone()
    assert row == (False, True, True)


def test_grant_reader_refuses_a_role_that_writes_through_membership(
    conn: psycopg.Connection, reader_role: str
) -> None:
    writer = f"{reader_role}_w"
    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(writer)))
    conn.execute(sql.SQL("GRANT DELETE ON pgsearch.assets TO {}").format(sql.Identifier(writer)))
    conn.execute(
        sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(sql.Identifier(reader_role), sql.Identifier(writer))
    )
    conn.commit()
    try:
        result = CliRunner().invoke(cli, ["db", "grant-reader", reader_role])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "DELETE on pgsearch.assets" in result.output and f"membership in {writer}" in result.output
        assert (
            _one(
                conn,
                "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = %s AND table_schema = 'pgsearch'",
                (reader_role,),
            )
            == 0
        )  # rolled back: no view granted either
    finally:
        conn.rollback()
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(writer)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(writer)))
        conn.commit()


@pytest.mark.parametrize(
    "name",
    [
        "public",
        "none",
        "current_user",
        "session_user",
        "current_role",
        "PUBLIC",
        "pg_read_all_data",
        "pg_mine",
    ],
)
def test_grant_reader_refuses_reserved_and_predefined_names(conn: psycopg.Connection, name: str) -> None:
    before = _one(conn, "SELECT count(*) FROM pg_roles")
    grants = "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = %s AND table_schema = 'pgsearch'"
    # PUBLIC may read pgsearch.reader_datasets (each role its own rows: migration 0010).
    granted = _one(conn, grants, (name,))
    result = CliRunner().invoke(cli, ["db", "grant-reader", name])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception is not None
    assert result.output.startswith("Error: role name") and len(result.output.strip().splitlines()) == 1
    assert ("pg_" in result.output) if name.startswith("pg_") else ("reserved" in result.output)
    assert _one(conn, "SELECT count(*) FROM pg_roles") == before
    assert _one(conn, grants, (name,)) == granted


def test_grant_reader_keeps_hostile_names_as_identifiers(conn: psycopg.Connection, dsn: str) -> None:
    role = f'r"; DROP TABLE pgsearch.assets; --{uuid.uuid4().hex[:6]}'
    try:
        result = CliRunner().invoke(cli, ["db", "grant-reader", role])
        assert result.exit_code == 0, result.output
        assert _one(conn, "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,)) is True
        assert _one(conn, "SELECT to_regclass('pgsearch.assets') IS NOT NULL") is True
    finally:
        conn.rollback()
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        conn.commit()


# -- migration round trip -----------------------------------------------------------------------


def test_downgrade_to_base_and_back(dsn: str) -> None:
    """The history before the 0007 baseline is squashed: down is to base, which drops everything."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        _small_dataset(conn)
    migrate.downgrade(dsn, "base")
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert migrate.current_revision(conn) is None
        assert _one(conn, "SELECT count(*) FROM pg_views WHERE schemaname = 'pgsearch'") == 0
        assert _one(conn, "SELECT count(*) FROM pg_proc WHERE pronamespace = 'pgsearch'::regnamespace") == 0
        assert _one(conn, "SELECT to_regclass('pgsearch.assets')") is None
    migrate.upgrade(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert migrate.current_revision(conn) == migrate.head_revision()
        assert _one(conn, "SELECT count(*) FROM pg_views WHERE schemaname = 'pgsearch'") == len(VIEWS)
        assert _one(conn, "SELECT count(*) FROM pgsearch.assets") == 0


# -- search settings ----------------------------------------------------------------------------


def test_search_settings_apply_at_connect_and_on_a_session(dsn: str) -> None:
    from pgsearch import db as database
    from pgsearch.search_settings import SEARCH_SETTINGS, apply_settings, libpq_options

    assert libpq_options({"a.b": "x y\\z"}) == "-c a.b=x\\ y\\\\z"
    with database.connect(dsn, options=libpq_options()) as conn:
        # Before pgvector's library loads the hnsw.* names are placeholders; after, real settings.
        conn.execute("SELECT '[1,2]'::halfvec <=> '[2,1]'::halfvec")
        for name, value in SEARCH_SETTINGS.items():
            assert _one(conn, "SELECT current_setting(%s)", (name,)) == value
    with database.connect(dsn) as conn:
        apply_settings(conn, local=True)
        assert _one(conn, "SHOW hnsw.iterative_scan") == "relaxed_order"
        conn.rollback()
        assert _one(conn, "SHOW hnsw.iterative_scan") in ("", "off")  # a placeholder until pgvector loads
