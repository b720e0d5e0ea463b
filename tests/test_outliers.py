"""`pgsearch outliers` against the real embedded server: planted noise images among real digits
(pixels model) come first and are flagged; the latest map's sparse clusters count; stored,
reused, stale; errors and outputs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from PIL import Image
from test_duplicates import HOSTILE, as_json, ok, run, write_folder

from pgsearch.curate import outliers as out
from pgsearch.curate.graph import Graph

NOISE = 4


@pytest.fixture
def loaded(dsn: str, tmp_path: Path) -> dict[str, Any]:
    truth = write_folder(tmp_path / "digits", noise=NOISE, seed=1)
    ok(
        run(
            "load",
            str(tmp_path / "digits"),
            "--dataset",
            "d",
            "--format",
            "folders",
            "--model",
            "pixels",
            "-q",
        )
    )
    truth.update(root=tmp_path / "digits", dsn=dsn)
    return truth


def _space(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(
            conn.execute("SELECT id FROM pgsearch.embedding_spaces WHERE target = 'asset'").fetchone()[0]
        )


def test_noise_images_come_first_and_are_flagged(loaded: dict[str, Any]) -> None:
    result = run("outliers", "--dataset", "d", "-f", "json", "-n", "0")
    rows = as_json(result)
    assert "no neighbour graph yet" in result.stderr and "computed (first run)" in result.stderr
    assert len(rows) == 160 and [r["rank"] for r in rows] == list(range(1, 161))
    assert {r["filename"] for r in rows[:NOISE]} == set(loaded["noise"])
    assert all(r["flagged"] for r in rows[:NOISE])
    flagged = [r for r in rows if r["flagged"]]
    assert len(flagged) <= NOISE + 2  # the default flags the planted ones, hardly anything else
    assert {"id", "filename", "uniqueness", "knn_distance", "cluster_size", "flagged"} <= set(rows[0])
    u = [r["uniqueness"] for r in rows]
    assert u == sorted(u, reverse=True) and all(0 <= x < 1 for x in u)
    assert rows[-1]["uniqueness"] == 0 and rows[0]["cluster_size"] is None  # no map yet
    assert f"{len(flagged)} of 160 flagged at uniqueness >= 0.5" in result.stderr
    only = as_json(run("outliers", "--dataset", "d", "-f", "json", "--flagged"))
    assert [r["id"] for r in only] == [r["id"] for r in flagged]


def test_stored_reused_and_stale_after_a_load(loaded: dict[str, Any]) -> None:
    ok(run("outliers", "--dataset", "d", "-f", "json"))
    space = _space(loaded["dsn"])
    with psycopg.connect(loaded["dsn"]) as conn:
        stored = conn.execute(f"SELECT count(*), max(uniqueness) FROM pgsearch.uniqueness_{space}").fetchone()
        runs = conn.execute("SELECT tool, items FROM pgsearch.curation_runs").fetchall()
    assert stored[0] == 160 and 0.5 < stored[1] < 1 and runs == [("outliers", 160)]
    again = ok(run("outliers", "--dataset", "d", "-f", "json", "-n", "5", "--threshold", "0.99"))
    assert (
        "reused the stored results" in again.stderr
        and "0 of 160 flagged at uniqueness >= 0.99" in again.stderr
    )
    assert not any(r["flagged"] for r in json.loads(again.stdout))
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, size=(32, 32), dtype=np.uint8), mode="L").save(
        loaded["root"] / "7" / "late_noise.png"
    )
    ok(run("load", str(loaded["root"]), "--dataset", "d", "--format", "folders", "-q"))
    stale = ok(run("outliers", "--dataset", "d", "-f", "json", "-n", str(NOISE + 1)))
    assert (
        "stale, 1 item added or changed since" in stale.stderr and "neighbour graph refreshed" in stale.stderr
    )
    assert "7/late_noise.png" in {r["filename"] for r in json.loads(stale.stdout)}


def test_sparse_clusters_of_the_latest_map_raise_uniqueness(loaded: dict[str, Any]) -> None:
    before = {r["filename"]: r for r in as_json(run("outliers", "--dataset", "d", "-f", "json", "-n", "0"))}
    space = _space(loaded["dsn"])
    lone = loaded["names"][10]
    with psycopg.connect(loaded["dsn"]) as conn:
        run_id = conn.execute(
            "INSERT INTO pgsearch.projection_runs (dataset_id, space_id, target, method)"
            " SELECT dataset_id, id, target, 'test' FROM pgsearch.embedding_spaces WHERE id = %s RETURNING id",
            (space,),
        ).fetchone()[0]
        # Every item in cluster 0 but one digit, which is noise: a cluster of 1.
        conn.execute(
            "INSERT INTO pgsearch.projection_points (run_id, item_id, x, y, cluster)"
            " SELECT %s, a.id, 0, 0, CASE WHEN a.filename = %s THEN -1 ELSE 0 END FROM pgsearch.assets a",
            (run_id, lone),
        )
    result = ok(run("outliers", "--dataset", "d", "-f", "json", "-n", "0"))
    assert (
        "map_run differ" in result.stderr and f"map run {run_id}, sparse clusters <= 5 items" in result.stderr
    )
    after = {r["filename"]: r for r in json.loads(result.stdout)}
    assert after[lone]["cluster_size"] == 1 and after[lone]["sparse"] is True
    assert after[loaded["names"][11]]["cluster_size"] == 159 and after[loaded["names"][11]]["sparse"] is False
    assert after[lone]["uniqueness"] > before[lone]["uniqueness"]
    assert after[lone]["knn_distance"] == before[lone]["knn_distance"]


def test_errors_are_clear(dsn: str, tmp_path: Path) -> None:
    missing = run("outliers", "--dataset", "nope")
    assert missing.exit_code != 0 and "no dataset named 'nope'" in missing.output
    write_folder(tmp_path / "f", count=5)
    ok(run("load", str(tmp_path / "f"), "--dataset", "raw", "--format", "folders", "--no-embed", "-q"))
    bare = run("outliers", "--dataset", "raw")
    assert (
        bare.exit_code != 0
        and "no asset embeddings yet; run `pgsearch embed --dataset raw --model pixels`" in bare.output
    )
    for bad in ("0", "1", "-0.5", "2", "nan"):
        result = run("outliers", "--dataset", "raw", "--threshold", bad)
        assert result.exit_code != 0 and "--threshold is a uniqueness between 0 and 1" in result.output, bad
    model = run("outliers", "--dataset", "raw", "--model", "pixels")
    assert model.exit_code != 0 and "has no asset embeddings of model 'pixels'" in model.output
    assert run("outliers", "--help").exit_code == 0


def test_csv_and_html_outputs(loaded: dict[str, Any], tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(ok(run("outliers", "-d", "d", "-f", "csv", "-n", "0")).stdout)))
    assert len(rows) == 160 and {
        "id",
        "filename",
        "uniqueness",
        "knn_distance",
        "cluster_size",
        "flagged",
    } <= set(rows[0])
    page = tmp_path / "unique.html"
    ok(run("outliers", "-d", "d", "-n", "0", "-o", str(page)))
    html = page.read_text()
    assert html.count("data:image/jpeg;base64,") == 160
    assert "Flagged: uniqueness &gt;= 0.5" in html and "Below the threshold" in html
    assert HOSTILE.split("/")[1] not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    table = ok(run("outliers", "-d", "d", "-n", "2")).stdout
    assert table.splitlines()[0].split()[:4] == ["rank", "id", "filename", "uniqueness"]


def _graph(distances: list[list[float]]) -> Graph:
    d = np.array(distances, dtype=np.float32)
    n, k = d.shape
    ids = np.arange(1, n + 1, dtype=np.int64)
    return Graph(ids, np.tile(ids[:k], (n, 1)), d)


def test_scores_by_hand() -> None:
    typical = [[0.1, 0.1, 0.1]] * 20
    graph = _graph([*typical, [0.5, 0.6, 0.7], [0.0, 0.0, 0.9]])
    scores = out.score(graph, k=3)
    assert scores.order()[:2].tolist() == [20, 21]  # the isolated one, then the pair far from the rest
    assert scores.uniqueness[0] == 0 and scores.uniqueness[20] > 0.5
    assert scores.knn_distance[21] == pytest.approx(0.3)
    # Equidistant items are no outliers (the spread has a floor).
    assert out.score(_graph(typical), k=3).uniqueness.max() == 0
    # A sparse item ranks as if its z were SPARSE_BONUS higher.
    sizes = np.full(22, 20, dtype=np.int32)
    sizes[3] = 1
    boosted = out.score(graph, k=3, cluster_size=sizes, bound=5, map_run=1)
    assert boosted.sparse.tolist().count(True) == 1 and boosted.z[3] == pytest.approx(
        scores.z[3] + out.SPARSE_BONUS
    )
    # The sparse bound: max(5, min(1% of the points, a tenth of the mean cluster)).
    assert out.sparse_bound(np.repeat(np.arange(10), 100)) == 10
    assert out.sparse_bound(np.repeat(np.arange(1000), 1000)) == 100
    assert out.sparse_bound(np.array([-1, -1, 0, 0])) == 5


def add_model(dsn: str, dataset: str, name: str = "shifted") -> int:
    """A second asset space in `dataset` (model `name`): each asset gets the pixels vector of the
    next asset by id, so that its scores differ from the pixels space's. Returns its space id."""
    from pgsearch.loader.spaces import ensure_model, ensure_space

    with psycopg.connect(dsn) as conn:
        ds, dim, source = conn.execute(
            "SELECT s.dataset_id, s.dim, s.id FROM pgsearch.embedding_spaces AS s"
            " JOIN pgsearch.datasets AS d ON d.id = s.dataset_id WHERE d.name = %s AND s.target = 'asset'",
            (dataset,),
        ).fetchone()
        space = ensure_space(conn, ds, ensure_model(conn, name, dim, False, {}), "asset")
        conn.execute(
            "INSERT INTO pgsearch.asset_embeddings (space_id, asset_id, embedding)"
            " SELECT %(space)s, e.asset_id, coalesce(lead(e.embedding) OVER (ORDER BY e.asset_id),"
            "        (SELECT f.embedding FROM pgsearch.asset_embeddings AS f WHERE f.space_id = %(source)s"
            "          ORDER BY f.asset_id LIMIT 1))"
            "   FROM pgsearch.asset_embeddings AS e WHERE e.space_id = %(source)s",
            {"space": space.id, "source": source},
        )
        return space.id


def test_a_reused_run_becomes_the_one_the_fields_read(loaded: dict[str, Any]) -> None:
    """outliers --model A, then --model B, then --model A again (reused): `uniqueness` reads A's
    results again, the run having been recorded again as the latest."""
    dsn = loaded["dsn"]
    pixels = _space(dsn)
    shifted = add_model(dsn, "d")

    def fields() -> dict[int, float]:
        with psycopg.connect(dsn) as conn:
            return dict(conn.execute("SELECT asset_id, uniqueness FROM pgsearch.v_assets").fetchall())

    def stored(space: int) -> dict[int, float]:
        with psycopg.connect(dsn) as conn:
            return dict(
                conn.execute(f"SELECT item_id, uniqueness FROM pgsearch.uniqueness_{space}").fetchall()
            )

    first = ok(run("outliers", "-d", "d", "--model", "pixels", "-f", "json"))
    assert "computed (first run)" in first.stderr and fields() == stored(pixels)
    ok(run("outliers", "-d", "d", "--model", "shifted", "-f", "json"))
    assert fields() == stored(shifted) != stored(pixels)
    again = ok(run("outliers", "-d", "d", "--model", "pixels", "-f", "json"))
    assert "reused the stored results of run 1" in again.stderr
    assert "recorded again as run 3, the latest, so that `uniqueness`" in again.stderr
    assert fields() == stored(pixels)
    with psycopg.connect(dsn) as conn:
        runs = conn.execute(
            "SELECT run_id, space_id, is_latest, params ->> 'recorded_from' FROM pgsearch.v_curation_runs ORDER BY run_id"
        ).fetchall()
        created = conn.execute("SELECT id, created_at FROM pgsearch.curation_runs ORDER BY id").fetchall()
    assert runs == [(1, pixels, False, None), (2, shifted, False, None), (3, pixels, True, "1")]
    assert created[2][1] == created[0][1]  # when its results were computed: staleness counts from there
    # Reused again while it is the latest: nothing more is recorded.
    last = ok(run("outliers", "-d", "d", "--model", "pixels", "-f", "json"))
    assert "reused the stored results of run 3" in last.stderr and "recorded again" not in last.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pgsearch.curation_runs").fetchone() == (3,)
    # The query language reads them too.
    flagged = {
        r["id"] for r in as_json(run("outliers", "-d", "d", "--model", "pixels", "-f", "json", "--flagged"))
    }
    assert flagged
    query = json.loads(ok(run("query", "uniqueness >= 0.5", "-d", "d", "-f", "json", "-n", "1000")).stdout)
    assert {r["id"] for r in query} == flagged
