"""`pgsearch neighbors` and pgsearch.curate.graph: the bulk k-nearest-neighbour graph (exact and
partitioned), its storage and binary reads, the incremental refresh through the HNSW index, what
summary() reports after loads, reloads and deletes, and the command's errors.

Recall is measured against brute-force numpy on the same (half-precision) vectors; a found
neighbour also counts when its distance ties the true k-th one."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from imagegen import make_coco, make_folder, pattern, save
from psycopg import sql

from pgsearch.cli import cli
from pgsearch.curate import graph
from pgsearch.curate.copyio import read_neighbor_rows
from pgsearch.curate.spaces import CurationError, resolve_space
from pgsearch.datasets import ensure_dataset
from pgsearch.loader import vectors as embedding_writer
from pgsearch.loader import writer
from pgsearch.loader.spaces import Space, ensure_model, ensure_space

# -- data ------------------------------------------------------------------------------------------


def clustered(n: int, dim: int = 512, *, clusters: int = 200, latent: int = 32, seed: int = 0) -> np.ndarray:
    """Gaussian clusters in a random latent subspace plus a little noise, unit length, rounded
    to float16 as the database stores them (bench/synthetic.py's "clustered" kind)."""
    rng = np.random.default_rng(seed)
    latent = min(latent, dim)
    basis = np.linalg.qr(rng.standard_normal((dim, latent)))[0].T
    centers = rng.standard_normal((clusters, latent))
    x = centers[rng.integers(clusters, size=n)] + 0.5 * rng.standard_normal((n, latent))
    x = x @ basis + 0.1 * np.sqrt(1.25 * latent / dim) * rng.standard_normal((n, dim))
    return _unit16(x)


def isotropic(n: int, dim: int = 256, *, seed: int = 0) -> np.ndarray:
    """Uniform on the sphere: no structure at all."""
    return _unit16(np.random.default_rng(seed).standard_normal((n, dim)))


def isotropic_clusters(n: int, dim: int = 512, *, clusters: int = 200, seed: int = 0) -> np.ndarray:
    """Clusters drawn isotropically in all dimensions (bench/query.py --latent-dim 0)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    return _unit16(
        centers[rng.integers(clusters, size=n)] + 0.7 / np.sqrt(dim) * rng.standard_normal((n, dim))
    )


def _unit16(x: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = x.astype(np.float16).astype(np.float32)
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)


def brute_force(x: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact neighbours of x[rows] (itself left out): (positions, cosine distances), nearest first."""
    s = x[rows] @ x.T
    s[np.arange(len(rows)), rows] = -np.inf
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return order, 1.0 - np.take_along_axis(s, order, axis=1)


def recall(x: np.ndarray, positions: np.ndarray, distances: np.ndarray, k: int, sample: int = 1000) -> float:
    """recall@k of a graph (positions into x) on a sample, ties with the k-th distance counted."""
    rows = np.sort(np.random.default_rng(99).choice(len(x), size=min(sample, len(x)), replace=False))
    truth, truth_d = brute_force(x, k, rows)
    hits = 0
    for i, r in enumerate(rows):
        expected = set(truth[i].tolist())
        kth = truth_d[i, k - 1]
        hits += sum(
            1
            for p, d in zip(positions[r, :k], distances[r, :k], strict=True)
            if p in expected or d <= kth + 1e-6
        )
    return hits / (len(rows) * k)


# -- the computation, in memory -------------------------------------------------------------------


def test_exact_equals_brute_force() -> None:
    x = clustered(3000, 64, clusters=30)
    info: dict[str, Any] = {}
    pos, dist = graph.knn(x, 10, method="exact", info=info)
    assert info["method"] == "exact" and pos.shape == (3000, 10) and dist.dtype == np.float32
    truth, truth_d = brute_force(x, 10, np.arange(3000))
    np.testing.assert_allclose(dist, truth_d, atol=1e-5)
    assert recall(x, pos, dist, 10, sample=3000) == 1.0
    assert (pos != np.arange(3000)[:, None]).all()
    assert (np.diff(dist, axis=1) >= -1e-7).all()  # nearest first


@pytest.mark.parametrize(
    "make",
    [pytest.param(clustered, id="clustered"), pytest.param(isotropic_clusters, id="isotropic-clusters")],
)
def test_ivf_recall_20k(make: Any) -> None:
    x = make(20_000)
    info: dict[str, Any] = {}
    pos, dist = graph.knn(x, 15, method="ivf", info=info)
    assert info["method"] == "ivf", info
    assert info["probes_per_item"] < 40 and info["work"] < graph.IVF_MAX_WORK
    assert recall(x, pos, dist, 10) >= 0.95
    assert recall(x, pos, dist, 15) >= 0.95
    assert (pos != np.arange(len(x))[:, None]).all() and (pos >= 0).all()


def test_ivf_on_unstructured_data_runs_the_exact_search_or_probes_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x = isotropic(20_000, 128)
    info: dict[str, Any] = {}
    pos, dist = graph.knn(x, 10, method="ivf", info=info)
    # No structure: probing enough lists would cost nearly the exact search, which runs instead.
    assert info["method"] == "exact" and "fallback" in info and info["estimated_work"] > 0.5
    assert recall(x, pos, dist, 10, sample=300) == 1.0
    # Made to probe anyway, the tuning still reaches the recall it aims at.
    monkeypatch.setattr(graph, "IVF_MAX_WORK", 1.01)
    info = {}
    pos, dist = graph.knn(x, 10, method="ivf", info=info)
    assert info["method"] == "ivf"
    assert recall(x, pos, dist, 10, sample=300) >= 0.95


def test_ivf_on_real_data() -> None:
    """scikit-learn's digits (8x8 scans, 64-d; shipped with the package): no Gaussian anywhere."""
    datasets = pytest.importorskip("sklearn.datasets")
    x = _unit16(datasets.load_digits().data.astype(np.float64) + 1e-3)
    info: dict[str, Any] = {}
    pos, dist = graph.knn(x, 10, method="ivf", info=info)
    assert info["method"] == "ivf" and info["lists"] > 1
    assert recall(x, pos, dist, 10, sample=len(x)) >= 0.98


def test_auto_is_exact_below_the_threshold() -> None:
    info: dict[str, Any] = {}
    graph.knn(clustered(500, 16), 5, info=info)
    assert info["method"] == "exact"


def test_duplicates_identical_and_zero_vectors() -> None:
    rng = np.random.default_rng(1)
    base = clustered(400, 32, clusters=10)
    x = np.concatenate([base, base[:50], np.tile(base[:1], (30, 1)), np.zeros((3, 32), np.float32)])
    for method in ("exact", "ivf"):
        pos, dist = graph.knn(x, 8, method=method)
        assert (pos != np.arange(len(x))[:, None]).all() and (pos >= 0).all() and (pos < len(x)).all()
        assert np.isfinite(dist).all() and (dist >= 0).all() and (dist <= 2).all()
        # an exact duplicate is at distance 0
        assert (dist[400:450, 0] < 1e-6).all()
        # 32 identical vectors (row 0, its copy 400, 450..479): 8 of the others, at distance 0
        block = np.concatenate([[0, 400], np.arange(450, 480)])
        assert (dist[450:480] < 1e-6).all() and np.isin(pos[450:480], block).all()
        assert all(len(set(row.tolist())) == 8 for row in pos)
    same = np.tile(rng.standard_normal((1, 8)).astype(np.float32), (40, 1))
    pos, dist = graph.knn(same, 5, method="ivf")
    assert (dist < 1e-6).all() and (pos != np.arange(40)[:, None]).all()


@pytest.mark.parametrize(("n", "dim", "k"), [(50, 2, 1), (300, 4000, 7), (201, 16, 200), (30_000, 3, 4)])
def test_dimensions_and_k_bounds(n: int, dim: int, k: int) -> None:
    x = clustered(n, dim, clusters=5, latent=min(dim, 8))
    info: dict[str, Any] = {}
    pos, dist = graph.knn(x, k, info=info)
    assert pos.shape == (n, k)
    assert recall(x, pos, dist, k, sample=200) >= 0.98


def test_too_few_items_and_bad_k() -> None:
    x = clustered(10, 8, clusters=2)
    with pytest.raises(CurationError, match="at least 16 embedded items; this space has 10.*at most 9"):
        graph.knn(x, 15)
    with pytest.raises(CurationError, match="between 1 and 200"):
        graph.knn(x, 0)
    with pytest.raises(CurationError, match="between 1 and 200"):
        graph.knn(clustered(300, 8), 201)
    assert graph.knn(x, 9)[0].shape == (10, 9)


def test_progress_stages() -> None:
    seen: list[tuple[str, int]] = []

    class Bar:
        def __init__(self, stage: str, total: int, unit: str) -> None:
            self.stage, self.total, self.n = stage, total, 0
            seen.append((stage, total))

        def update(self, n: float = 1) -> None:
            self.n += n

        def close(self) -> None:
            assert self.n == self.total, (self.stage, self.n, self.total)

    graph.knn(clustered(25_000, 32), 5, progress=Bar)
    assert seen == [("computing", 25_000)]


# -- in the database ------------------------------------------------------------------------------

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)


def insert_assets(
    conn: psycopg.Connection,
    dataset: str,
    vectors: np.ndarray,
    *,
    model: str = "test:vectors",
    index: bool = False,
    start: int = 0,
) -> tuple[Space, np.ndarray]:
    """Assets f{i}.jpg with these vectors, written as the loader writes them (binary COPY into the
    space's partition through the embedding writer); returns the space and the asset ids."""
    ds = ensure_dataset(conn, dataset)
    n, dim = vectors.shape
    model_id = ensure_model(conn, model, dim, False, {})
    space = ensure_space(conn, ds.id, model_id, "asset")
    ids = np.array(writer.reserve_ids(conn, "assets", n), dtype=np.int64)
    with conn.cursor().copy(
        "COPY pgsearch.assets (id, dataset_id, filename, width, height) FROM STDIN"
    ) as copy:
        for j, aid in enumerate(ids.tolist()):
            copy.write_row((aid, ds.id, f"f{start + j:06d}.jpg", 64, 48))
    embedding_writer.write(
        conn, space, [embedding_writer.Embedding(i, 1, v) for i, v in zip(ids.tolist(), vectors, strict=True)]
    )
    if index:
        conn.execute("SELECT pgsearch.build_embedding_index(%s)", (space.id,))
    conn.commit()
    return resolve_space(conn, dataset, "asset", model), ids


def write_vectors(conn: psycopg.Connection, space: Space, ids: np.ndarray, vectors: np.ndarray) -> None:
    dim = vectors.shape[1]
    row = np.dtype(
        [("nf", ">i2"), ("l1", ">i4"), ("space", ">i8"), ("l2", ">i4"), ("id", ">i8"), ("l3", ">i4"),
         ("dim", ">i2"), ("unused", ">i2"), ("v", ">f2", (dim,))]
    )  # fmt: skip
    block = np.zeros(len(ids), dtype=row)
    block["nf"], block["l1"], block["space"], block["l2"], block["id"] = 3, 8, space.id, 8, ids
    block["l3"], block["dim"], block["v"] = 4 + 2 * dim, dim, vectors
    statement = sql.SQL("COPY pgsearch.{} (space_id, asset_id, embedding) FROM STDIN (FORMAT binary)")
    with conn.cursor().copy(statement.format(sql.Identifier(space.table_name))) as copy:
        copy.write(HEADER + block.tobytes() + struct.pack(">h", -1))


def stored_vectors(conn: psycopg.Connection, space: Space) -> tuple[np.ndarray, np.ndarray]:
    from pgsearch.curate.copyio import read_space_vectors

    v = read_space_vectors(
        conn, space.table_name, "asset_id" if space.target == "asset" else "shape_id", space.dim
    )
    x = v.vectors / np.linalg.norm(v.vectors, axis=1, keepdims=True)
    return v.ids, x.astype(np.float32)


def graph_recall(conn: psycopg.Connection, space: Space, k: int) -> float:
    """recall@k of the stored graph against brute force on the stored vectors."""
    ids, x = stored_vectors(conn, space)
    g = graph.load_graph(conn, space)
    assert (g.ids == ids).all(), "the graph has a row for every vector, and no other"
    positions = np.searchsorted(ids, g.neighbor_ids)
    assert (ids[positions] == g.neighbor_ids).all(), "every neighbour is an item with a vector"
    return recall(x, positions, g.distances, k)


@pytest.fixture
def conn(conn: psycopg.Connection) -> psycopg.Connection:
    """Autocommit: a test's reads must not hold locks that the command it runs next waits for
    (a rebuild swaps the graph's partition; see graph.SWAP_LOCK_TIMEOUT_S)."""
    conn.autocommit = True
    return conn


def neighbors(*args: str, ok: bool = True) -> Any:
    result = CliRunner().invoke(cli, ["neighbors", *args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if "json" in args else result.stdout
    return result


def test_cli_builds_and_views_match(conn: psycopg.Connection) -> None:
    x = clustered(600, 32, clusters=12)
    space, ids = insert_assets(conn, "vec", x)
    out = neighbors("-d", "vec", "--format", "json", "-q")
    assert {k: out[k] for k in ("dataset", "items", "k", "missing", "stale", "action", "method")} == {
        "dataset": "vec", "items": 600, "k": 15, "missing": 0, "stale": 0, "action": "built", "method": "exact",
    }  # fmt: skip
    assert out["seconds"] > 0 and out["target"] == "asset" and out["model"] == "test:vectors"
    g = graph.load_graph(conn, space)
    assert g.k == 15 and (g.ids == ids).all()
    assert graph_recall(conn, space, 15) == 1.0
    # the stored distances are pgvector's cosine distances between the stored halfvecs
    check = conn.execute(
        "SELECT max(abs(v.distance - (a.embedding <=> b.embedding))) FROM pgsearch.v_neighbors AS v"
        " JOIN pgsearch.asset_embeddings AS a ON a.asset_id = v.item_id"
        " JOIN pgsearch.asset_embeddings AS b ON b.asset_id = v.neighbor_id WHERE v.dataset = 'vec'"
    ).fetchone()
    assert check is not None and check[0] < 1e-5
    rows = conn.execute(
        "SELECT item_id, filename, neighbor_id, neighbor_filename, rank, distance, model, target"
        " FROM pgsearch.v_neighbors WHERE dataset = 'vec' ORDER BY item_id, rank"
    ).fetchall()
    assert len(rows) == 600 * 15
    names = {int(i): f"f{j:06d}.jpg" for j, i in enumerate(ids)}
    for j, r in enumerate(rows):
        i, rank = divmod(j, 15)
        assert r == (
            g.ids[i], names[int(g.ids[i])], g.neighbor_ids[i, rank], names[int(g.neighbor_ids[i, rank])],
            rank + 1, pytest.approx(float(g.distances[i, rank])), "test:vectors", "asset",
        )  # fmt: skip
    # table output: a line or two
    text = neighbors("-d", "vec")
    assert (
        "600 items, k 15" in text
        and "already up to date" in text
        and "0 missing" in text
        and "0 stale" in text
    )
    assert len(text.strip().splitlines()) == 2


def test_rebuild_swaps_the_partition_and_drop_removes_it(conn: psycopg.Connection) -> None:
    space, _ = insert_assets(conn, "vec", clustered(300, 16, clusters=6))
    first = neighbors("-d", "vec", "-k", "5", "--format", "json", "-q")
    assert first["action"] == "built" and first["k"] == 5
    again = neighbors("-d", "vec", "--format", "json", "-q")  # no -k: the stored graph's
    assert again["action"] == "up to date" and again["k"] == 5
    rebuilt = neighbors("-d", "vec", "-k", "7", "--format", "json", "-q")
    assert rebuilt["action"] == "built" and rebuilt["k"] == 7 and rebuilt["items"] == 300
    forced = neighbors("-d", "vec", "--rebuild", "--method", "ivf", "--format", "json", "-q")
    assert forced["action"] == "built" and forced["k"] == 7
    assert graph.load_graph(conn, space).k == 7
    parts = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'pgsearch.neighbors'::regclass"
    ).fetchall()
    assert parts == [(f"neighbors_{space.id}",)]
    index = conn.execute(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass AND indisprimary",
        (f"pgsearch.neighbors_{space.id}",),
    ).fetchone()
    assert index == (f"pgsearch.neighbors_{space.id}_pkey",)
    conn.execute("SELECT pgsearch.drop_embedding_space(%s)", (space.id,))
    assert conn.execute("SELECT to_regclass(%s)", (f"pgsearch.neighbors_{space.id}",)).fetchone() == (None,)
    assert conn.execute("SELECT count(*) FROM pgsearch.neighbor_graphs").fetchone() == (0,)


def test_load_graph_reads_rows_of_any_length(conn: psycopg.Connection) -> None:
    space, ids = insert_assets(conn, "vec", clustered(40, 8, clusters=3))
    neighbors("-d", "vec", "-k", "4", "-q")
    conn.execute(
        sql.SQL("UPDATE pgsearch.{} SET neighbor_ids = %s, distances = %s WHERE item_id = %s").format(
            sql.Identifier(f"neighbors_{space.id}")
        ),
        ([int(ids[1]), int(ids[2])], [0.1, 0.2], int(ids[0])),
    )
    conn.execute(
        sql.SQL("UPDATE pgsearch.{} SET neighbor_ids = '{{}}', distances = '{{}}' WHERE item_id = %s").format(
            sql.Identifier(f"neighbors_{space.id}")
        ),
        (int(ids[5]),),
    )
    conn.commit()
    g = graph.load_graph(conn, space)
    assert len(g.ids) == 40 and (g.ids == ids).all()
    assert g.neighbor_ids[0].tolist() == [ids[1], ids[2], -1, -1]
    assert g.distances[0, :2].tolist() == pytest.approx([0.1, 0.2]) and np.isinf(g.distances[0, 2:]).all()
    assert (g.neighbor_ids[5] == -1).all()
    assert (g.neighbor_ids[[1, 2, 3, 4, 6]] > 0).all()
    rows = read_neighbor_rows(conn, f"neighbors_{space.id}", 4)
    assert (rows.ids == g.ids).all() and (rows.neighbor_ids == g.neighbor_ids).all()
    assert graph.Graph(g.ids, g.neighbor_ids, g.distances).positions()[0].tolist() == [1, 2, -1, -1]


def test_incremental_refresh_through_the_index(conn: psycopg.Connection) -> None:
    x = clustered(8030, 32, clusters=80, seed=3)
    space, ids = insert_assets(conn, "vec", x[:8000], index=True)
    built = neighbors("-d", "vec", "-k", "10", "--format", "json", "-q")
    assert built["action"] == "built" and built["items"] == 8000
    assert graph.summary(conn, space).stale == 0
    # a new group on half the assets touches their rows, not their vectors: nothing is stale
    conn.execute(
        "UPDATE pgsearch.assets SET groups = groups || '{g}'::text[] WHERE id = ANY(%s)", (ids[::2].tolist(),)
    )
    s = graph.summary(conn, space)
    assert (s.missing, s.stale, s.changed, s.gone) == (0, 0, 0, 0)
    # 30 new items (one a copy of an existing item's vector), 6 changed vectors, 6 deleted assets
    insert_assets(conn, "vec", x[8000:8029], start=8000)
    _, twin = insert_assets(conn, "vec", x[[2000]], start=8029)
    changed = ids[100:106]
    rng = np.random.default_rng(5)
    dataset_id = conn.execute("SELECT id FROM pgsearch.datasets WHERE name = 'vec'").fetchone()[0]
    writing = ensure_space(conn, dataset_id, ensure_model(conn, "test:vectors", 32, False, {}), "asset")
    new_vectors = x[rng.integers(200, 8000, size=6)]
    embedding_writer.write(
        conn,
        writing,
        [embedding_writer.Embedding(i, 2, v) for i, v in zip(changed.tolist(), new_vectors, strict=True)],
    )
    gone = ids[500:506]
    conn.execute("DELETE FROM pgsearch.assets WHERE id = ANY(%s)", (gone.tolist(),))
    s = graph.summary(conn, space)
    assert (s.missing, s.changed, s.gone, s.items) == (30, 6, 6, 8000)
    assert s.stale >= 12  # their rows, and the rows that name them
    out = neighbors("-d", "vec", "--format", "json", "-q")
    assert out["action"] == "refreshed" and out["k"] == 10
    assert (out["items"], out["missing"], out["stale"]) == (8030 - 6, 0, 0)
    assert graph_recall(conn, space, 10) >= 0.99
    # the reverse edge: the row of the item the new twin copies (recomputed or not) takes it first
    g = graph.load_graph(conn, space)
    row = int(np.searchsorted(g.ids, ids[2000]))
    assert g.neighbor_ids[row, 0] == twin[0] and g.distances[row, 0] < 1e-6
    refreshed = graph.load_graph(conn, space)
    rebuilt = neighbors("-d", "vec", "--rebuild", "--format", "json", "-q")
    assert rebuilt["action"] == "built"
    exact = graph.load_graph(conn, space)
    assert (refreshed.ids == exact.ids).all()
    same = np.mean(
        [
            len(set(a) & set(b)) / 10
            for a, b in zip(refreshed.neighbor_ids.tolist(), exact.neighbor_ids.tolist(), strict=True)
        ]
    )
    assert same >= 0.99


def test_many_changes_rebuild_and_no_index_rebuilds(conn: psycopg.Connection) -> None:
    x = clustered(1000, 16, clusters=10)
    space, _ = insert_assets(conn, "vec", x[:500], index=True)
    neighbors("-d", "vec", "-k", "5", "-q")
    insert_assets(conn, "vec", x[500:], start=500)  # +100%: over the incremental bound
    out = neighbors("-d", "vec", "--format", "json", "-q")
    assert out["action"] == "built" and out["items"] == 1000
    other, _ = insert_assets(conn, "plain", x[:300])  # no HNSW index
    neighbors("-d", "plain", "-k", "5", "-q")
    insert_assets(conn, "plain", x[300:305], start=300)
    out = neighbors("-d", "plain", "--format", "json", "-q")
    assert out["action"] == "built" and out["items"] == 305 and out["missing"] == 0


def test_loads_reloads_and_deletes(conn: psycopg.Connection, tmp_path: Path) -> None:
    """What summary() says after the loader adds images, reloads a changed file (new asset
    vector; its kept shapes re-embedded under the same ids), adds groups, and after deletes."""
    folder = make_folder(tmp_path / "images", 24, sizes=((64, 64), (48, 40)), formats=("PNG",))
    make_coco(folder, tmp_path / "coco.json", kinds=("bbox",), per_image=2)
    base = [str(tmp_path / "images"), "-d", "imgs", "--workers", "0", "--model", "pixels", "--json"]

    def load(*extra: str) -> None:
        result = CliRunner().invoke(cli, ["load", *base, *extra], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    load("-a", str(tmp_path / "coco.json"), "--format", "coco")
    assets = neighbors("-d", "imgs", "-k", "5", "--format", "json", "-q")
    shapes = neighbors("-d", "imgs", "--shapes", "-k", "4", "--format", "json", "-q")
    assert (assets["items"], assets["action"], shapes["items"], shapes["target"]) == (
        24,
        "built",
        48,
        "shape",
    )
    a_space = resolve_space(conn, "imgs", "asset", None)
    s_space = resolve_space(conn, "imgs", "shape", None)
    assert a_space.indexed and s_space.indexed

    # the same files again with a group: asset rows change, vectors do not
    load("--group", "again")
    assert graph.summary(conn, a_space).stale == 0 and graph.summary(conn, s_space).stale == 0

    # three new images
    for i in range(3):
        save(pattern(64, 64, 5000 + i), tmp_path / "images" / f"new_{i}.png")
    load()
    s = graph.summary(conn, a_space)
    assert (s.missing, s.stale, s.changed) == (3, 0, 0)

    # a changed file, reloaded without annotations: its shapes are kept and re-embedded
    target = folder.images[4].filename
    save(pattern(64, 64, 777), tmp_path / "images" / target)
    load()
    s = graph.summary(conn, a_space)
    assert (s.missing, s.changed, s.gone) == (3, 1, 0) and s.stale >= 1
    t = graph.summary(conn, s_space)
    assert (t.missing, t.changed, t.gone) == (0, 2, 0) and t.stale >= 2

    # a deleted asset: its row and its shapes' rows are gone
    conn.execute(
        "DELETE FROM pgsearch.assets WHERE filename = %s AND dataset_id = %s",
        (folder.images[0].filename, a_space.dataset_id),
    )
    conn.commit()
    s = graph.summary(conn, a_space)
    assert (s.missing, s.changed, s.gone) == (3, 1, 1)
    t = graph.summary(conn, s_space)
    assert (t.changed, t.gone) == (2, 2)

    # refresh both: nothing lags, and the rows are the exact neighbours
    out = neighbors("-d", "imgs", "--format", "json", "-q")
    assert (out["action"], out["items"], out["missing"], out["stale"]) == ("refreshed", 26, 0, 0)
    out = neighbors("-d", "imgs", "--shapes", "--format", "json", "-q")
    assert (out["action"], out["items"], out["missing"], out["stale"]) == ("refreshed", 46, 0, 0)
    assert graph_recall(conn, a_space, 5) >= 0.99
    assert graph_recall(conn, s_space, 4) >= 0.99


def test_ensure_graph_builds_then_refreshes(conn: psycopg.Connection) -> None:
    x = clustered(400, 16, clusters=8)
    space, ids = insert_assets(conn, "vec", x[:390], index=True)
    g = graph.ensure_graph(conn, space, 6)
    assert g.k == 6 and len(g.ids) == 390
    insert_assets(conn, "vec", x[390:], start=390)
    g = graph.ensure_graph(conn, space, 4)  # a graph of 6 serves 4
    assert g.k == 6 and len(g.ids) == 400
    assert graph.summary(conn, space).missing == 0
    g = graph.ensure_graph(conn, space, 8)
    assert g.k == 8


def cli_error(*args: str) -> str:
    result = CliRunner().invoke(cli, ["neighbors", *args])
    assert result.exit_code != 0
    assert (
        "Traceback" not in result.output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
    return result.output


def test_errors(conn: psycopg.Connection) -> None:
    assert "no dataset named 'nope'" in cli_error("-d", "nope")
    ensure_dataset(conn, "bare")
    conn.commit()
    out = cli_error("-d", "bare")
    assert "no asset embeddings yet" in out and "pgsearch embed --dataset bare" in out
    x = clustered(30, 8, clusters=3)
    insert_assets(conn, "two", x, model="m:one")
    insert_assets(conn, "two", x, model="m:two", start=100)
    out = cli_error("-d", "two")
    assert "several models (m:one, m:two)" in out and "--model" in out
    assert "has no asset embeddings of model 'm:three'" in cli_error("-d", "two", "--model", "m:three")
    assert "-k must be between 1 and 200, not 0" in cli_error("-d", "two", "--model", "m:one", "-k", "0")
    assert "-k must be between 1 and 200, not 201" in cli_error("-d", "two", "--model", "m:one", "-k", "201")
    out = cli_error("-d", "two", "--model", "m:one", "-k", "30")
    assert "has 30 embedded assets" in out and "needs at least 31" in out and "-k 29" in out
    out = cli_error("-d", "two", "--model", "m:one", "--shapes")
    assert "no shape" in out  # no shapes at all, or none embedded
    # an embedded space with nothing embedded yet
    ds = ensure_dataset(conn, "pending")
    ensure_space(conn, ds.id, ensure_model(conn, "m:one", 8, False, {}), "asset")
    conn.commit()
    out = cli_error("-d", "pending")
    assert "no embedded assets of model m:one yet" in out and "pgsearch embed --dataset pending" in out
    ok = neighbors("-d", "two", "--model", "m:two", "-k", "29", "--format", "json", "-q")
    assert ok["items"] == 30 and ok["k"] == 29
    # Without -k, a space of 15 items or fewer gets every other item as neighbours.
    insert_assets(conn, "small", clustered(6, 8, clusters=2), model="m:one", start=500)
    small = neighbors("-d", "small", "--format", "json", "-q")
    assert small["items"] == 6 and small["k"] == 5 and small["action"] == "built"
    assert "needs at least 7" in cli_error("-d", "small", "-k", "6")


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(cli, ["neighbors", "--help"])
    assert result.exit_code == 0 and "Example" in result.output and "--shapes" in result.output
