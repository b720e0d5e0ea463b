"""`pgsearch map`: a 2-D map (UMAP from the neighbour graph, DBSCAN/HDBSCAN clusters) stored as
a projection run, read back by the query language (x, y, cluster) and the views; runs reused,
recomputed, listed and dropped; pictures; errors; the sampled path of large spaces."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner, Result
from imagegen import make_coco, make_folder

import pgsearch
from pgsearch.cli import cli
from pgsearch.curate import projection

BLOBS = 3
PER_BLOB = 25


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args))
    if ok:
        assert result.exit_code == 0, result.output
    return result


def fails(*args: str, says: str) -> Result:
    """A user error: non-zero exit, the message, no traceback."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code != 0, result.output
    assert says in result.output, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def summary(*args: str) -> dict[str, Any]:
    return json.loads(run("map", *args, "--format", "json", "-q").stdout)


def blob_vectors(count: int, seed: int = 0, dim: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """count vectors in BLOBS well separated blobs: (vectors, blob of each)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((BLOBS, dim)) * 4
    blob = np.arange(count) % BLOBS
    return (centres[blob] + rng.standard_normal((count, dim)) * 0.3).astype(np.float32), blob


def load_blobs(
    tmp_path: Path, name: str = "blobs", count: int = BLOBS * PER_BLOB, seed: int = 0
) -> dict[str, int]:
    """A dataset of `count` small images whose vectors (brought with --embeddings) form three
    blobs; returns filename -> blob."""
    root = tmp_path / f"{name}-images"
    folder = make_folder(root, count, seed=seed, sizes=((16, 12),), formats=("PNG",))
    vectors, blob = blob_vectors(count, seed)
    file = tmp_path / f"{name}-vectors.npz"
    np.savez(file, filenames=np.array(folder.filenames), embeddings=vectors)
    run("load", str(root), "-d", name, "--embeddings", str(file), "--workers", "0", "--quiet")
    return dict(zip(folder.filenames, blob.tolist(), strict=True))


def points(conn: psycopg.Connection, run_id: int) -> dict[int, tuple[float, float, int]]:
    return {
        r[0]: (r[1], r[2], r[3])
        for r in conn.execute(
            "SELECT item_id, x, y, cluster FROM pgsearch.projection_points WHERE run_id = %s", (run_id,)
        )
    }


def filenames(conn: psycopg.Connection, dataset: str) -> dict[int, str]:
    return dict(
        conn.execute(
            "SELECT a.id, a.filename FROM pgsearch.assets AS a JOIN pgsearch.datasets AS d ON d.id = a.dataset_id"
            " WHERE d.name = %s",
            (dataset,),
        ).fetchall()
    )


def between(values: list[float], share: float) -> float:
    """A threshold between two stored values (none on it), rounded: the translator compares
    x and y as numeric, which PostgreSQL makes of a double with 15 significant digits."""
    i = max(0, min(len(values) - 2, int(share * len(values))))
    return round((values[i] + values[i + 1]) / 2, 9)


def selected(db: Any, query: str, dataset: str = "blobs", **options: Any) -> set[int]:
    return {row["id"] for row in db.query(query, dataset=dataset, limit=100_000, **options)}


def test_map_finds_the_blobs_and_the_query_language_reads_the_run(
    conn: psycopg.Connection, dsn: str, tmp_path: Path
) -> None:
    truth = load_blobs(tmp_path)
    first = summary("-d", "blobs")
    assert first["computed"] and not first["reused"]
    assert first["items"] == BLOBS * PER_BLOB and first["clusters"] == BLOBS
    assert first["noise_fraction"] == 0.0 and first["sampling"] is None
    params = first["params"]
    assert params["n_neighbors"] == 15 and params["metric"] == "cosine" and params["seed"] == 0
    assert params["cluster"]["method"] == "dbscan" and params["cluster"]["eps_auto"]
    assert params["cluster"]["eps"] > 0 and params["cluster"]["min_samples"] == 5

    names = filenames(conn, "blobs")
    stored = points(conn, first["run_id"])
    assert set(stored) == set(names)
    # one cluster per blob, and every blob whole
    pairs = {(truth[names[i]], c) for i, (_, _, c) in stored.items()}
    assert len(pairs) == BLOBS and len({c for _, c in pairs}) == BLOBS
    summary_row = conn.execute(
        "SELECT items, clusters, noise_fraction, seconds, method FROM pgsearch.v_projection_runs WHERE run_id = %s",
        (first["run_id"],),
    ).fetchone()
    assert summary_row is not None and summary_row[:3] == (BLOBS * PER_BLOB, BLOBS, 0.0)
    assert summary_row[3] > 0 and summary_row[4] == "umap"

    db = pgsearch.connect(dsn)
    try:
        for c in range(BLOBS):
            assert selected(db, f"cluster == {c}") == {i for i, p in stored.items() if p[2] == c}
        a = between(sorted(p[0] for p in stored.values()), 1 / 3)
        b = between(sorted(p[1] for p in stored.values()), 2 / 3)
        expected = {i for i, (x, y, _) in stored.items() if x > a and y < b}
        assert 0 < len(expected) < len(stored)
        assert selected(db, f"x > {a!r} and y < {b!r}") == expected

        # Without --recompute the run is reused; with it a new run, which the fields follow.
        again = summary("-d", "blobs")
        assert again["run_id"] == first["run_id"] and not again["computed"] and again["reused"]
        newer = summary("-d", "blobs", "--recompute", "--seed", "3")
        assert newer["run_id"] > first["run_id"] and newer["computed"]
        assert newer["params"]["seed"] == 3
        fresh = points(conn, newer["run_id"])
        a = between(sorted(p[0] for p in fresh.values()), 1 / 2)
        assert selected(db, f"x > {a!r}") == {i for i, p in fresh.items() if p[0] > a}
        assert selected(db, "cluster == 0") == {i for i, p in fresh.items() if p[2] == 0}
        view = dict(
            conn.execute("SELECT asset_id, x FROM pgsearch.v_assets WHERE dataset = 'blobs'").fetchall()
        )
        assert view == {i: p[0] for i, p in fresh.items()}

        # Other options are another request: not reused.
        other = summary("-d", "blobs", "--cluster", "hdbscan", "--seed", "3")
        assert other["computed"] and other["params"]["cluster"]["method"] == "hdbscan"
        assert other["clusters"] == BLOBS

        # --list (table and JSON) and --drop: the fields go back to the run before.
        listed = json.loads(run("map", "--list", "-d", "blobs", "--format", "json").stdout)
        assert [r["run_id"] for r in listed] == [first["run_id"], newer["run_id"], other["run_id"]]
        assert [r["is_latest"] for r in listed] == [False, False, True]
        table = run("map", "--list", "-d", "blobs").stdout
        assert "latest" in table and f"{BLOBS * PER_BLOB}" in table and "hdbscan" in table
        dropped = run("map", "-d", "blobs", "--drop", str(other["run_id"])).stdout
        assert f"dropped map run {other['run_id']}" in dropped
        assert selected(db, "cluster == 0") == {i for i, p in fresh.items() if p[2] == 0}
        assert conn.execute(
            "SELECT count(*) FROM pgsearch.projection_points WHERE run_id = %s", (other["run_id"],)
        ).fetchone() == (0,)
    finally:
        db.close()

    fails("map", "-d", "blobs", "--drop", "999999", says="there is no map run 999999")
    load_blobs(tmp_path, name="other", count=12, seed=1)
    mine = summary("-d", "other")
    fails("map", "-d", "blobs", "--drop", str(mine["run_id"]), says="belongs to dataset 'other'")
    assert len(json.loads(run("map", "--list", "--format", "json").stdout)) == 3  # all datasets


def test_a_changed_dataset_is_not_reused(conn: psycopg.Connection, tmp_path: Path) -> None:
    load_blobs(tmp_path, count=30)
    first = summary("-d", "blobs")
    load_blobs(tmp_path, count=33)  # three more images with vectors
    second = summary("-d", "blobs")
    assert second["computed"] and second["run_id"] != first["run_id"] and second["items"] == 33


def test_shapes_map_fills_v_shapes(conn: psycopg.Connection, tmp_path: Path) -> None:
    root = tmp_path / "images"
    folder = make_folder(root, 8, sizes=((96, 72),), formats=("PNG",))
    coco, shapes = make_coco(folder, tmp_path / "instances.json", per_image=2, kinds=("bbox",))
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    run(
        "load", str(root), "-d", "boxes", "--annotations", str(tmp_path / "instances.json"),
        "--format", "coco", "--model", "pixels", "--workers", "0", "--quiet",
    )  # fmt: skip
    result = summary("-d", "boxes", "--shapes")
    assert result["target"] == "shape" and result["items"] == len(shapes)
    rows = conn.execute("SELECT x, y, cluster FROM pgsearch.v_shapes WHERE dataset = 'boxes'").fetchall()
    assert len(rows) == len(shapes) and all(
        x is not None and y is not None and c is not None for x, y, c in rows
    )
    # the asset map is another target: still empty
    assert conn.execute("SELECT count(x) FROM pgsearch.v_assets WHERE dataset = 'boxes'").fetchone() == (0,)
    png = tmp_path / "shapes.png"
    run("map", "-d", "boxes", "--shapes", "--png", str(png), "--color-by", "label", "-q")
    assert png.stat().st_size > 1000


def test_png_and_html(conn: psycopg.Connection, tmp_path: Path) -> None:
    from PIL import Image

    load_blobs(tmp_path)
    conn.execute(
        "UPDATE pgsearch.assets SET status = CASE WHEN id % 2 = 0 THEN 'review' ELSE 'done' END,"
        " metadata = jsonb_build_object('score', id % 7, 'camera', 'cam' || (id % 3))"
    )
    conn.commit()
    png = tmp_path / "map.png"
    html = tmp_path / "map.html"
    out = json.loads(
        run("map", "-d", "blobs", "--png", str(png), "--html", str(html), "--format", "json", "-q").stdout
    )
    assert out["png"] == str(png) and out["html"] == str(html)
    with Image.open(png) as img:
        assert img.format == "PNG" and img.width > 500 and img.height > 400
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 4  # three clusters, text, background
    page = html.read_text()
    assert "blobs" in page and "<canvas" in page.lower()
    for field in ("status", "metadata.score", "metadata.camera", "group", "label"):
        target = tmp_path / f"by-{field}.png"
        run("map", "-d", "blobs", "--png", str(target), "--color-by", field, "-q")
        with Image.open(target) as img:
            assert img.width > 500
    fails(
        "map",
        "-d",
        "blobs",
        "--png",
        str(tmp_path / "x.png"),
        "--color-by",
        "bogus",
        says="--color-by must be",
    )
    fails("map", "-d", "blobs", "--png", str(tmp_path / "nowhere" / "x.png"), says="does not exist")


def test_errors(conn: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fails("map", "-d", "nope", says="no dataset named 'nope'")
    conn.execute("INSERT INTO pgsearch.datasets (name) VALUES ('bare')")
    conn.commit()
    fails("map", "-d", "bare", says="pgsearch embed --dataset bare")
    load_blobs(tmp_path, name="tiny", count=6)
    fails("map", "-d", "tiny", says=f"at least {projection.MIN_ITEMS} embedded assets")
    load_blobs(tmp_path)
    fails("map", "-d", "blobs", "--eps", "0", says="--eps must be a positive distance")
    fails("map", "-d", "blobs", "--eps", "-1", says="--eps must be a positive distance")
    fails("map", "-d", "blobs", "--min-samples", "0", says="--min-samples must be between 1")
    fails("map", "-d", "blobs", "--cluster", "hdbscan", "--eps", "0.5", says="--eps is DBSCAN's")
    fails("map", "-d", "blobs", "--min-cluster-size", "5", says="add --cluster hdbscan")
    fails("map", "-d", "blobs", "--min-dist", "2", says="--min-dist must be between 0 and 1")
    fails("map", "-d", "blobs", "--n-neighbors", "1", says="--n-neighbors must be between 2")
    fails("map", "-d", "blobs", "--model", "pixels", says="no asset embeddings of model 'pixels'")
    fails("map", "-d", "blobs", "--shapes", says="dataset 'blobs' has no shapes")
    fails("map", says="--dataset is required")
    fails("map", "-d", "blobs", "--list", "--drop", "1", says="do not go together")
    # An explicit eps is DBSCAN's radius on the map, kept as given.
    given = summary("-d", "blobs", "--eps", "0.75", "--min-samples", "3")
    assert given["params"]["cluster"] == {
        "method": "dbscan", "eps_auto": False, "eps": 0.75, "min_samples": 3
    }  # fmt: skip
    # Without the curate extra: the install command.
    monkeypatch.setattr(projection, "_UMAP", None)
    for name in [m for m in sys.modules if m == "umap" or m.startswith("umap.")]:
        monkeypatch.setitem(sys.modules, name, None)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "umap", None)  # type: ignore[arg-type]
    fails("map", "-d", "blobs", "--recompute", says="python3 -m pip install 'pgsearch[curate]'")


HOSTILE_LABELS = [
    "$\\notacommand$",
    "x$^{$y",
    "tab\there",
    "new\nline",
    "cat \U0001f431",
    "\u65e5\u672c",
    "plain",
]


def test_png_of_hostile_labels(
    conn: psycopg.Connection, dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Labels that are mathtext ($...$), hold control characters or glyphs the font lacks: the PNG
    is drawn with them verbatim, on one line, and nothing is printed on stderr."""
    import matplotlib.cbook

    load_blobs(tmp_path)
    conn.execute(
        "UPDATE pgsearch.assets SET label_counts = jsonb_build_object((%s::text[])[1 + id %% %s], 1)",
        (HOSTILE_LABELS, len(HOSTILE_LABELS)),
    )
    conn.commit()
    drawn: list[str] = []
    draw = projection._draw_png

    def spying(plt: Any, fig: Any, ax: Any, *args: Any) -> None:
        draw(plt, fig, ax, *args)
        drawn.extend(t.get_text() for t in ax.get_legend().get_texts())
        drawn.append(ax.get_title())

    monkeypatch.setattr(projection, "_draw_png", spying)
    png = tmp_path / "labels.png"
    result = CliRunner().invoke(cli, ["map", "-d", "blobs", "--png", str(png), "--color-by", "label", "-q"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "Warning" not in result.output
    assert "missing from" not in result.output and result.stderr == ""
    assert png.stat().st_size > 1000
    legend = drawn[:-1]
    assert len(legend) == len(HOSTILE_LABELS)
    assert not any(matplotlib.cbook.is_math_text(text) for text in drawn)
    assert not any(c in text for text in drawn[:-1] for c in "\n\t")
    assert "\\$\\notacommand\\$ (" in " ".join(legend)  # drawn as \$, which matplotlib shows as $
    assert "new\\nline (" in " ".join(legend) and "tab\\there (" in " ".join(legend)
    # The run was committed before the picture was drawn: it is there for a fresh connection.
    with psycopg.connect(dsn) as other:
        assert other.execute("SELECT count(*) FROM pgsearch.projection_runs").fetchone() == (1,)


def test_text_for_matplotlib_is_verbatim() -> None:
    assert projection.plain_text("$\\notacommand$") == "\\$\\notacommand\\$"
    assert projection.plain_text("a\nb\tc\x07") == "a\\nb\\tc\\x07"
    assert projection._legend_label("x$y", "label", 1234) == "x\\$y (1,234)"
    assert projection._legend_label(3, "cluster", 5) == "cluster 3 (5)"
    long = projection._legend_label("$" * 60, "label", 1)
    assert long.count("\\$") == 39 and long.endswith("… (1)")


def test_the_run_is_kept_when_the_picture_fails(
    conn: psycopg.Connection, dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_blobs(tmp_path)

    def broken(*args: Any, **kwargs: Any) -> Path:
        raise ValueError("the picture failed")

    monkeypatch.setattr(projection, "write_png", broken)
    result = CliRunner().invoke(cli, ["map", "-d", "blobs", "--png", str(tmp_path / "m.png"), "-q"])
    assert isinstance(result.exception, ValueError)
    with psycopg.connect(dsn) as other:
        assert other.execute("SELECT count(*) FROM pgsearch.projection_runs").fetchone() == (1,)

    def full(*args: Any, **kwargs: Any) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(projection, "write_png", full)
    failed = fails("map", "-d", "blobs", "--png", str(tmp_path / "m.png"), says="No space left on device")
    assert "map run 1 is stored" in failed.output and "reused" in failed.output
    assert conn.execute("SELECT count(*) FROM pgsearch.projection_runs").fetchone() == (1,)


def test_unwritable_pictures_fail_before_any_work(conn: psycopg.Connection, tmp_path: Path) -> None:
    load_blobs(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("")
    for option in ("--html", "--png"):
        failed = fails(
            "map", "-d", "blobs", option, str(afile / "x.html"), says=f"cannot write {afile / 'x.html'}"
        )
        assert "Not a directory" in failed.output
    fails("map", "-d", "blobs", "--html", str(tmp_path), says="is a directory")
    fails("map", "-d", "blobs", "--png", "", says="must not be empty")
    same = str(tmp_path / "both")
    fails("map", "-d", "blobs", "--png", same, "--html", same, says="name the same file")
    assert conn.execute("SELECT count(*) FROM pgsearch.projection_runs").fetchone() == (0,)
    assert not (tmp_path / "both").exists()


def test_clustering_warnings_are_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    """scikit-learn's warnings on degenerate maps (ConvergenceWarning and the like) would print
    on stderr even with --quiet."""
    import warnings

    import sklearn.cluster
    from sklearn.exceptions import ConvergenceWarning

    fit = sklearn.cluster.DBSCAN.fit_predict

    def warning_fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        warnings.warn("did not converge", ConvergenceWarning, stacklevel=1)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(sklearn.cluster.DBSCAN, "fit_predict", warning_fit)
    xy = np.random.default_rng(0).normal(size=(50, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels, _ = projection.cluster_points(xy, projection.MapOptions())
    assert len(labels) == 50 and not caught, [str(w.message) for w in caught]


def test_shapes_of_a_dataset_without_embeddable_shapes(conn: psycopg.Connection, tmp_path: Path) -> None:
    """--shapes where there is nothing to embed says so instead of `pgsearch embed`, which would
    embed nothing; where shapes wait to be embedded it still says `pgsearch embed`."""
    root = tmp_path / "classes"
    make_folder(root, 12, sizes=((16, 12),), formats=("PNG",), subfolders=("cat", "dog"))
    run("load", str(root), "-d", "tags", "--format", "folders", "--model", "pixels", "--workers", "0", "-q")
    for tool in ("map", "duplicates", "outliers", "neighbors"):
        failed = fails(tool, "-d", "tags", "--shapes", says="whole-image tags (12: a classification dataset)")
        assert "are not embedded" in failed.output and "leave out --shapes" in failed.output
        assert "pgsearch embed" not in failed.output
    images = tmp_path / "images"
    folder = make_folder(images, 4, sizes=((96, 72),), formats=("PNG",))
    coco, shapes = make_coco(folder, tmp_path / "instances.json", per_image=2, kinds=("bbox",))
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    run(
        "load", str(images), "-d", "boxes", "--annotations", str(tmp_path / "instances.json"),
        "--format", "coco", "--no-embed", "--workers", "0", "--quiet",
    )  # fmt: skip
    fails(
        "map",
        "-d",
        "boxes",
        "--shapes",
        says=f"({len(shapes)} shapes to embed); run `pgsearch embed --dataset boxes`",
    )


def test_text_summary(conn: psycopg.Connection, tmp_path: Path) -> None:
    load_blobs(tmp_path)
    text = run("map", "-d", "blobs", "-q").stdout
    assert "map of blobs (assets, model external:blobs-vectors.npz): run" in text
    assert f"{BLOBS * PER_BLOB} points, {BLOBS} clusters (dbscan eps" in text and "(auto)" in text
    assert "reused" in run("map", "-d", "blobs", "-q").stdout


def test_no_runs_listed(conn: psycopg.Connection) -> None:
    assert "no map runs yet" in run("map", "--list").stdout
    assert json.loads(run("map", "--list", "--format", "json").stdout) == []


# -- the computation without a database --------------------------------------------------------


def _graph(vectors: np.ndarray, k: int = 15) -> tuple[np.ndarray, np.ndarray]:
    from pgsearch.curate.graph import knn

    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return knn(unit.astype(np.float32), k)


def test_large_spaces_are_fitted_on_a_balanced_sample() -> None:
    rng = np.random.default_rng(5)
    sizes = [1600, 1000, 300, 100]  # one rare region among common ones
    centres = rng.standard_normal((len(sizes), 24)) * 4
    blob = np.repeat(np.arange(len(sizes)), sizes)
    vectors = centres[blob] + rng.standard_normal((len(blob), 24)) * 0.3
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    positions, distances = _graph(vectors)
    options = projection.MapOptions(sample_above=2000, sample_size=1000)
    result = projection.project(vectors, positions, distances, options)
    sampling = result.params["sampling"]
    assert sampling["items"] == len(vectors) and sampling["fitted"] == 1000 and sampling["cells"] >= 2
    assert np.isfinite(result.xy).all() and result.xy.shape == (len(vectors), 2)
    assert result.clusters == len(sizes)
    for b in range(len(sizes)):  # every blob one cluster of its own, the rare one too
        labels = set(result.cluster[blob == b].tolist()) - {-1}
        assert len(labels) == 1
        assert np.mean(result.cluster[blob == b] == -1) < 0.05
    # the same options give the same map
    again = projection.project(vectors, positions, distances, options)
    np.testing.assert_array_equal(again.xy, result.xy)
    np.testing.assert_array_equal(again.cluster, result.cluster)


def test_balanced_sample_takes_an_equal_share_per_cell() -> None:
    rng = np.random.default_rng(0)
    cells = np.repeat(np.arange(4), [1000, 500, 30, 5])
    chosen = projection.balanced_sample(cells, 200, rng)
    assert len(chosen) == 200 and len(set(chosen.tolist())) == 200
    counts = np.bincount(cells[chosen], minlength=4)
    assert counts[3] == 5 and counts[2] == 30  # small cells give all they have
    assert abs(int(counts[0]) - int(counts[1])) <= 1 and counts[0] + counts[1] == 165


def test_placement_from_neighbours() -> None:
    positions = np.array([[1, 2], [0, 2], [0, 1], [2, 1]])
    distances = np.full((4, 2), 0.1, dtype=np.float32)
    xy = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    placed = np.array([True, True, False, False])
    projection.place_from_neighbours(xy, placed, positions, distances)
    assert placed.all()
    np.testing.assert_allclose(xy[2], [1.0, 0.0])  # between its two placed neighbours
    np.testing.assert_allclose(xy[3], [2.0, 0.0])  # its one neighbour placed before this round


def test_clusters_are_numbered_by_size() -> None:
    labels = np.array([5, 5, -1, 2, 2, 2, 7])
    np.testing.assert_array_equal(projection._by_size(labels), [1, 1, -1, 0, 0, 0, 2])
