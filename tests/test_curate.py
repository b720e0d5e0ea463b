"""`pgsearch curate` against the real embedded server, on a generated dataset loaded with the
pixels model: three dense clusters, one small rare cluster, uniform-noise images and duplicate
copies (one byte-identical, the others +-1 grey level). The subset covers every cluster including
the rare one, holds no two copies of one image and no noise image (unless --include-outliers),
respects --where, is written into a group the query language finds; errors are clear; the report
renders in headless Chromium and its numbers agree with a computation here."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner, Result
from imagegen import pattern
from PIL import Image
from psycopg import sql

from pgsearch import db as database
from pgsearch.cli import cli
from pgsearch.curate.spaces import CurationError
from pgsearch.curate.subset import CurateRequest, map_clusters, quotas, random_subset, run_curate

DATASET = "curate"
DENSE = ("dense0", "dense1", "dense2")
CLUSTERS = (*DENSE, "rare")
HOSTILE_GROUP = '<b>batch&"1"</b>'


def _member(base: Image.Image, rng: np.random.Generator, jitter: float) -> Image.Image:
    """A variant of `base`: a colour tint, a small blob and pixel noise."""
    a = np.asarray(base, dtype=np.float64)
    tint = rng.normal(0, jitter, size=3)
    blob = np.zeros_like(a)
    y, x = rng.integers(0, a.shape[0] - 12), rng.integers(0, a.shape[1] - 12)
    blob[y : y + 12, x : x + 12] = rng.normal(0, 3 * jitter, size=3)
    return Image.fromarray(np.clip(a + tint + blob + rng.normal(0, 6, a.shape), 0, 255).astype(np.uint8))


def write_dataset(root: Path, seed: int = 3) -> dict[str, Any]:
    """The folder (label = sub-folder) and what was planted: kind per file, duplicate pairs."""
    rng = np.random.default_rng(seed)
    kind: dict[str, str] = {}
    for cluster, base_seed, count, jitter in (
        ("dense0", 11, 40, 14.0),
        ("dense1", 22, 40, 14.0),
        ("dense2", 33, 40, 14.0),
        ("rare", 99, 4, 7.0),
    ):
        base = pattern(48, 48, base_seed)
        for i in range(count):
            name = f"{cluster}/{cluster}_{i:02d}.png"
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            _member(base, rng, jitter).save(root / name)
            kind[name] = cluster
    for j in range(5):
        name = f"noise/noise_{j}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)).save(root / name)
        kind[name] = "noise"
    pairs = []
    shutil.copyfile(root / "dense0/dense0_00.png", root / "dense0/copy_exact.png")
    pairs.append(("dense0/dense0_00.png", "dense0/copy_exact.png"))
    for cluster, i in (("dense0", 1), ("dense1", 0), ("dense2", 0), ("rare", 0)):
        original = f"{cluster}/{cluster}_{i:02d}.png"
        pixels = np.asarray(Image.open(root / original), dtype=np.int16)
        moved = np.clip(pixels + rng.integers(-1, 2, size=pixels.shape), 0, 255).astype(np.uint8)
        copy = f"{cluster}/copy_{i:02d}.png"
        Image.fromarray(moved).save(root / copy)
        pairs.append((original, copy))
    for original, copy in pairs:
        kind[copy] = kind[original]
    return {"kind": kind, "pairs": pairs}


@pytest.fixture(scope="module")
def loaded(
    server_url: str, template_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """One database for the module (the tests write distinct groups), loaded once."""
    from pgsearch.loader.pipeline import LoadOptions, load_folder

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE pgsearch_template").format(sql.Identifier(name)))
    url = server_url.rsplit("/", 1)[0] + "/" + name
    root = tmp_path_factory.mktemp("curate-data")
    truth = write_dataset(root)
    with database.connect(url) as conn:
        load_folder(
            conn, LoadOptions(root=str(root), dataset=DATASET, format="folders", model="pixels", workers=0)
        )
    yield {"dsn": url, "root": root, **truth}
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _one(conn: psycopg.Connection, statement: str, params: tuple[Any, ...]) -> tuple[Any, ...]:
    row = conn.execute(statement, params).fetchone()
    assert row is not None
    return tuple(row)


def run(loaded: dict[str, Any], *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--dsn", loaded["dsn"]])


def curate(loaded: dict[str, Any], *args: str) -> dict[str, Any]:
    result = run(loaded, "curate", "-d", DATASET, "-q", "-f", "json", *args)
    assert result.exit_code == 0, (result.output, result.exception)
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def members(loaded: dict[str, Any], group: str) -> list[str]:
    """The group's filenames, found by the query language."""
    query = '"' + group.replace("\\", "\\\\").replace('"', '\\"') + '" in groups'
    result = run(loaded, "query", query, "-d", DATASET, "-f", "json", "-n", "1000")
    assert result.exit_code == 0, result.output
    return sorted(r["filename"] for r in json.loads(result.stdout))


def check_subset(loaded: dict[str, Any], names: list[str]) -> None:
    kinds = Counter(loaded["kind"][n] for n in names)
    assert all(kinds[c] >= 1 for c in CLUSTERS), kinds  # every cluster, the rare one included
    for original, copy in loaded["pairs"]:
        assert not (original in names and copy in names), (original, copy)


def test_subset_covers_every_cluster_without_duplicates_or_noise(loaded: dict[str, Any]) -> None:
    summary = curate(loaded, "--size", "16", "--into-group", "g16")
    names = members(loaded, "g16")
    assert len(names) == 16 == summary["chosen"] == summary["added_to_group"]
    check_subset(loaded, names)
    assert not [n for n in names if loaded["kind"][n] == "noise"]
    assert summary["candidates"] == len(loaded["kind"])
    assert summary["junk_excluded"] == 5  # exactly the noise images
    assert summary["covered"] == summary["clusters"] and summary["covered_pct"] == 100.0
    assert summary["clustering"].startswith("k-means")
    with psycopg.connect(loaded["dsn"]) as conn:
        row = conn.execute(
            "SELECT tool, items, flagged, params FROM pgsearch.curation_runs WHERE id = %s",
            (summary["run_id"],),
        ).fetchone()
    assert row is not None
    tool, items, flagged, params = row
    assert (tool, items, flagged) == ("curate", len(loaded["kind"]), 16)
    assert params["group"] == "g16" and params["size"] == 16


def test_every_eligible_item_once_and_one_more_is_refused(loaded: dict[str, Any]) -> None:
    eligible = len(loaded["kind"]) - 5 - len(loaded["pairs"])  # no noise, one of each copy pair
    summary = curate(loaded, "--size", str(eligible), "--into-group", "all-eligible")
    names = members(loaded, "all-eligible")
    assert len(names) == eligible
    check_subset(loaded, names)
    assert summary["duplicates_skipped"] == len(loaded["pairs"])
    assert not [n for n in names if loaded["kind"][n] == "noise"]
    result = run(loaded, "curate", "-d", DATASET, "-q", "-n", str(eligible + 1), "-g", "one-more")
    assert result.exit_code != 0
    assert f"the {eligible:,} eligible" in result.output and "near-duplicates" in result.output, result.output
    assert members(loaded, "one-more") == []


def test_include_outliers_makes_noise_eligible(loaded: dict[str, Any]) -> None:
    summary = curate(loaded, "--size", "16", "--into-group", "with-outliers", "--include-outliers")
    names = members(loaded, "with-outliers")
    noise = [n for n in names if loaded["kind"][n] == "noise"]
    assert len(noise) == 5  # each a cluster of one, the sparsest: picked first
    assert summary["junk_excluded"] == 0 and summary["junk"] == 5
    check_subset(loaded, names)


def test_where_restricts_the_candidates(loaded: dict[str, Any]) -> None:
    summary = curate(loaded, "--size", "10", "--into-group", "no-dense0", "--where", 'not "dense0" in labels')
    names = members(loaded, "no-dense0")
    kinds = Counter(loaded["kind"][n] for n in names)
    assert len(names) == 10 and kinds["dense0"] == 0
    assert all(kinds[c] >= 1 for c in ("dense1", "dense2", "rare")), kinds
    assert summary["candidates"] == sum(1 for k in loaded["kind"].values() if k != "dense0")
    # A narrow filter (a third of the space): the selection graph is computed among the candidates.
    summary = curate(
        loaded, "--size", "6", "--into-group", "narrow", "--where", '"dense1" in labels or "rare" in labels'
    )
    names = members(loaded, "narrow")
    kinds = Counter(loaded["kind"][n] for n in names)
    assert len(names) == 6 and set(kinds) == {"dense1", "rare"}, kinds
    assert not any({original, copy} <= set(names) for original, copy in loaded["pairs"])
    with psycopg.connect(loaded["dsn"]) as conn:
        (graph,) = _one(
            conn,
            "SELECT params->>'selection_graph' FROM pgsearch.curation_runs WHERE id = %s",
            (summary["run_id"],),
        )
    assert graph == "local"
    result = run(loaded, "curate", "-d", DATASET, "-q", "-n", "6", "-g", "x", "--where", '"rare" in labels')
    assert result.exit_code != 0 and "more than the 5 assets matching --where" in result.output, result.output


def test_size_above_the_candidates_is_a_clear_error(loaded: dict[str, Any]) -> None:
    total = len(loaded["kind"])
    result = run(loaded, "curate", "-d", DATASET, "-q", "-n", str(total + 1), "-g", "too-many")
    assert result.exit_code != 0
    assert (
        f"more than the {total:,} candidate" in result.output and f"--size {total:,} or less" in result.output
    )
    assert members(loaded, "too-many") == []


def test_existing_group_is_refused_unless_replace(loaded: dict[str, Any]) -> None:
    curate(loaded, "--size", "6", "--into-group", "batch")
    result = run(loaded, "curate", "-d", DATASET, "-q", "-n", "8", "-g", "batch")
    assert (
        result.exit_code != 0 and "already holds 6 assets" in result.output and "--replace" in result.output
    )
    assert len(members(loaded, "batch")) == 6
    summary = curate(loaded, "--size", "8", "--into-group", "batch", "--replace", "--seed", "1")
    assert summary["removed_from_group"] == 6
    names = members(loaded, "batch")
    assert len(names) == 8
    check_subset(loaded, names)


def test_map_clusters_are_used_when_they_cover_the_candidates(loaded: dict[str, Any]) -> None:
    """A map run (written here as `pgsearch map` stores one) with the true clusters: curate balances
    over them; a run missing a candidate is not used."""
    cluster_of = {"dense0": 0, "dense1": 1, "dense2": 2, "rare": 3, "noise": -1}
    with psycopg.connect(loaded["dsn"]) as conn:
        space_id, dataset_id = _one(
            conn,
            "SELECT s.id, s.dataset_id FROM pgsearch.embedding_spaces s JOIN pgsearch.datasets d"
            " ON d.id = s.dataset_id WHERE d.name = %s",
            (DATASET,),
        )
        assets = conn.execute(
            "SELECT id, filename FROM pgsearch.assets WHERE dataset_id = %s", (dataset_id,)
        ).fetchall()
        (run_id,) = _one(
            conn,
            "INSERT INTO pgsearch.projection_runs (dataset_id, space_id, target, method)"
            " VALUES (%s, %s, 'asset', 'test') RETURNING id",
            (dataset_id, space_id),
        )
        for i, (asset, name) in enumerate(assets):
            conn.execute(
                "INSERT INTO pgsearch.projection_points (run_id, item_id, x, y, cluster) VALUES (%s, %s, %s, 0, %s)",
                (run_id, asset, float(i), cluster_of[loaded["kind"][name]]),
            )
        conn.commit()
    try:
        summary = curate(loaded, "--size", "8", "--into-group", "from-map")
        assert summary["clustering"].startswith(f"map run {run_id}: 4 clusters")
        # Candidates that are all junk: a clear error, or each a cluster of one with
        # --include-outliers (no cluster of the map left to balance over).
        result = run(
            loaded, "curate", "-d", DATASET, "-q", "-n", "2", "-g", "junk-only", "-w", '"noise" in labels'
        )
        assert result.exit_code == 1 and not isinstance(result.exception, IndexError), result.exception
        assert "no eligible candidates: of 5 candidates matching --where, 5 are junk" in result.output
        assert "--include-outliers" in result.output and members(loaded, "junk-only") == []
        isolated = curate(
            loaded, "-n", "3", "-g", "junk-only", "-w", '"noise" in labels', "--include-outliers"
        )
        assert [loaded["kind"][n] for n in members(loaded, "junk-only")] == ["noise"] * 3
        assert isolated["clusters"] == 5 and isolated["covered"] == 3
        assert summary["clusters"] == 4 and summary["covered"] == 4
        kinds = Counter(loaded["kind"][n] for n in members(loaded, "from-map"))
        expected = quotas(np.array([41, 41, 41, 5]), 8)  # the clusters' sizes, copies included
        assert [kinds[c] for c in CLUSTERS] == expected.tolist()
        with psycopg.connect(loaded["dsn"]) as conn:
            conn.execute(
                "DELETE FROM pgsearch.projection_points WHERE run_id = %s AND item_id = %s",
                (run_id, assets[0][0]),
            )
            conn.commit()
        summary = curate(loaded, "--size", "8", "--into-group", "map-incomplete")
        assert summary["clustering"].startswith("k-means")
        assert any(f"map run {run_id} has no point for 1" in n for n in summary["notes"])
    finally:
        with psycopg.connect(loaded["dsn"]) as conn:
            conn.execute("DELETE FROM pgsearch.projection_runs WHERE id = %s", (run_id,))
            conn.commit()


def test_stored_duplicate_groups_are_used(loaded: dict[str, Any]) -> None:
    result = run(loaded, "duplicates", "-d", DATASET, "-q", "-f", "json", "-o", "-")
    assert result.exit_code == 0, result.output
    summary = curate(loaded, "--size", "12", "--into-group", "after-duplicates")
    assert summary["duplicates_source"].startswith("stored groups of duplicates run")
    check_subset(loaded, members(loaded, "after-duplicates"))


def _load_more(loaded: dict[str, Any], root: Path, dataset: str) -> None:
    """Loads another dataset into the module's database."""
    from pgsearch.loader.pipeline import LoadOptions, load_folder

    with database.connect(loaded["dsn"]) as conn:
        load_folder(
            conn, LoadOptions(root=str(root), dataset=dataset, format="folders", model="pixels", workers=0)
        )


def test_many_identical_copies_give_one_pick(loaded: dict[str, Any], tmp_path: Path) -> None:
    """40 byte-identical copies of one file: more than a neighbour list (k 15) holds, so copies
    are not all graph neighbours of each other; with no `pgsearch duplicates` run, curate finds
    the duplicate groups itself (identical files included) and picks one copy at most."""
    root = tmp_path / "copies"
    truth = write_dataset(root)
    for i in range(40):
        shutil.copyfile(root / "dense1/dense1_05.png", root / f"dense1/same_{i:02d}.png")
    _load_more(loaded, root, "copies")
    files = sorted(str(f.relative_to(root)) for f in root.rglob("*.png"))
    eligible = len(files) - 5 - len(truth["pairs"]) - 40  # no noise, one of each copy pair, one of 41
    result = run(loaded, "curate", "-d", "copies", "-q", "-f", "json", "-n", str(eligible), "-g", "all")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    with psycopg.connect(loaded["dsn"]) as conn:
        hashes = [r[0] for r in conn.execute(
            "SELECT a.content_hash FROM pgsearch.assets a JOIN pgsearch.datasets d ON d.id = a.dataset_id"
            " WHERE d.name = 'copies' AND 'all' = ANY(a.groups)"
        ).fetchall()]  # fmt: skip
    assert len(hashes) == eligible and len(set(hashes)) == eligible  # never two identical files
    digest = hashlib.sha256((root / "dense1/dense1_05.png").read_bytes()).hexdigest()
    assert sum(1 for h in hashes if digest in h) == 1
    assert summary["duplicates_source"].startswith("duplicate groups found now: identical files")
    assert summary["duplicates_skipped"] == 40 + len(truth["pairs"])
    result = run(loaded, "curate", "-d", "copies", "-q", "-n", str(eligible + 1), "-g", "one-more")
    assert result.exit_code == 1 and f"the {eligible:,} eligible" in result.output, result.output


def test_a_dataset_of_twelve(loaded: dict[str, Any], tmp_path: Path) -> None:
    """Fewer items than a neighbour list of 15 needs: the graph takes k = n - 1."""
    root = tmp_path / "twelve"
    for i in range(12):
        (root / f"c{i % 3}").mkdir(parents=True, exist_ok=True)
        pattern(48, 48, 500 + i).save(root / f"c{i % 3}/p{i:02d}.png")
    _load_more(loaded, root, "twelve")
    result = run(loaded, "curate", "-d", "twelve", "-q", "-f", "json", "-n", "5", "-g", "five")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["chosen"] == 5
    with psycopg.connect(loaded["dsn"]) as conn:
        (k,) = _one(
            conn,
            "SELECT g.k FROM pgsearch.neighbor_graphs g JOIN pgsearch.embedding_spaces s ON s.id = g.space_id"
            " JOIN pgsearch.datasets d ON d.id = s.dataset_id WHERE d.name = 'twelve'",
            (),
        )
    assert k == 11


def _runs(loaded: dict[str, Any]) -> int:
    with psycopg.connect(loaded["dsn"]) as conn:
        return int(_one(conn, "SELECT count(*) FROM pgsearch.curation_runs WHERE tool = 'curate'", ())[0])


def test_replace_is_one_transaction(loaded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """--replace empties the group, fills it and records the run in one transaction: a run that
    fails (or is interrupted) at the last step leaves the group as it was."""
    import pgsearch.curate.subset as subset

    curate(loaded, "--size", "6", "--into-group", "atomic")
    before = members(loaded, "atomic")
    runs = _runs(loaded)

    def fail(*args: Any, **kwargs: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(subset, "record_run", fail)
    with database.connect(loaded["dsn"]) as conn, pytest.raises(KeyboardInterrupt):
        run_curate(conn, CurateRequest(dataset=DATASET, size=9, group="atomic", replace=True, seed=2))
    assert members(loaded, "atomic") == before and _runs(loaded) == runs
    monkeypatch.undo()
    summary = curate(loaded, "--size", "9", "--into-group", "atomic", "--replace", "--seed", "2")
    assert summary["removed_from_group"] == 6 and summary["added_to_group"] == 9
    assert len(members(loaded, "atomic")) == 9 and _runs(loaded) == runs + 1


def test_api_group_edit_without_commit(loaded: dict[str, Any]) -> None:
    from pgsearch.api import Client

    with database.connect(loaded["dsn"]) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT a.id FROM pgsearch.assets a JOIN pgsearch.datasets d ON d.id = a.dataset_id"
            " WHERE d.name = %s ORDER BY a.id LIMIT 4", (DATASET,)
        ).fetchall()]  # fmt: skip
        conn.commit()
        client = Client(conn)
        assert client.edit_group(DATASET, "edit", add=ids[:3]) == (3, 0)
        with pytest.raises(RuntimeError), conn.transaction():
            assert client.edit_group(DATASET, "edit", add=ids[3:], remove=ids[:3], commit=False) == (1, 3)
            raise RuntimeError("the caller's own write failed")
        assert len(members(loaded, "edit")) == 3  # rolled back with the caller's transaction
        with conn.transaction():
            assert client.edit_group(DATASET, "edit", add=ids[3:], remove=ids[:2], commit=False) == (1, 2)
        assert len(members(loaded, "edit")) == 2
        assert client.remove_from_group(DATASET, ids, "edit") == 2


def test_bad_options_are_clear_errors(loaded: dict[str, Any], tmp_path: Path) -> None:
    from pgsearch.commands import curate as command
    from pgsearch.curate import subset

    assert (command.MAX_SEED, command.MAX_CLUSTERS) == (subset.MAX_SEED, subset.MAX_CLUSTERS)
    base = ("curate", "-d", DATASET, "-q", "-n", "5", "-g", "bad")
    for args, message in (
        (("--seed", "-1"), "--seed"),
        (("--seed", "99999999999", "--clusters", "5"), "--seed"),
        (("--clusters", "0"), "--clusters"),
        (("--clusters", "5001"), "--clusters"),
        (("--limit", "5"), "has no --limit: the number of assets to pick is --size (-n)"),
    ):
        result = run(loaded, *base, *args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    with database.connect(loaded["dsn"]) as conn:
        for request in (
            CurateRequest(dataset=DATASET, size=5, group="bad", seed=-1),
            CurateRequest(dataset=DATASET, size=5, group="bad", seed=2**32),
            CurateRequest(dataset=DATASET, size=5, group="bad", clusters=0),
        ):
            with pytest.raises(CurationError):
                run_curate(conn, request)
    # The largest seed works.
    curate(loaded, "-n", "5", "-g", "big-seed", "--seed", str(2**32 - 1), "--clusters", "5")
    result = run(loaded, *base, "--where", "width > 100000")
    assert result.exit_code == 1 and f"--where matches no asset of dataset {DATASET!r}" in result.output
    assert "--size 0" not in result.output
    assert members(loaded, "bad") == []


def test_report_needs_matplotlib_before_anything_changes(
    loaded: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = _runs(loaded)
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails
    report = tmp_path / "r.html"
    result = run(loaded, "curate", "-d", DATASET, "-q", "-n", "5", "-g", "no-mpl", "--report", str(report))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert "--report needs matplotlib: python3 -m pip install 'pgsearch[curate]'" in result.output
    monkeypatch.undo()
    result = run(loaded, "curate", "-d", DATASET, "-q", "-n", "5", "-g", "no-mpl", "--report", str(tmp_path))
    assert result.exit_code == 1 and "cannot write" in result.output, result.output
    assert not report.exists() and members(loaded, "no-mpl") == [] and _runs(loaded) == runs


def test_map_clusters_of_no_rows() -> None:
    labels, ids, joined = map_clusters(
        np.zeros((3, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    )
    assert len(labels) == 0 and len(ids) == 0 and joined == 0


def test_quotas_favour_small_clusters() -> None:
    q = quotas(np.array([400, 100, 25, 1]), 40)
    assert q.sum() == 40 and (q >= 1).all() and q[3] == 1
    assert q[0] / q[1] == pytest.approx(2, rel=0.2)  # sqrt: 4x the size, 2x the picks
    assert quotas(np.array([50, 3, 9]), 2).tolist() == [0, 1, 1]  # fewer picks than clusters: smallest first
    assert quotas(np.array([2, 2]), 4).tolist() == [2, 2]


# -- the report ------------------------------------------------------------------------------------


def _label_counts(conn: psycopg.Connection, ids: list[int]) -> Counter[str]:
    rows = conn.execute("SELECT label_counts FROM pgsearch.assets WHERE id = ANY(%s)", (ids,)).fetchall()
    out: Counter[str] = Counter()
    for (counts,) in rows:
        out.update((counts or {}).keys())
    return out


def _match(pattern: str, page: str) -> str:
    found = re.search(pattern, page, re.S)
    assert found, pattern
    return found.group(1)


def _cell(page: str, key: str) -> str:
    return _match(rf'data-key="{key}"[^>]*>([^<]*)<', page).replace(",", "")


def test_report_numbers_and_chromium(loaded: dict[str, Any], tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    summary = curate(
        loaded, "--size", "20", "--into-group", HOSTILE_GROUP, "--report", str(report), "--seed", "5"
    )
    page = report.read_text(encoding="utf-8")
    # Escaped, self-contained.
    assert HOSTILE_GROUP not in page and "&lt;b&gt;batch&amp;&quot;1&quot;&lt;/b&gt;" in page
    assert not re.search(r'(src|href)="(?!data:)', page)
    charts = re.findall(r'<img class="chart" alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(charts) == 3  # clusters covered, items per cluster, class balance
    for chart in charts:
        image = Image.open(io.BytesIO(base64.b64decode(chart)))
        assert image.format == "PNG" and image.width > 300
    assert page.count('src="data:image/jpeg;base64,') >= 10  # thumbnails of sparse and dense picks

    # The numbers, against a computation here.
    data = json.loads(_match(r'<script type="application/json" id="curate-data">(.*?)</script>', page))
    with psycopg.connect(loaded["dsn"]) as conn:
        (dataset_id,) = _one(conn, "SELECT id FROM pgsearch.datasets WHERE name = %s", (DATASET,))
        candidates = [r[0] for r in conn.execute(
            "SELECT id FROM pgsearch.assets WHERE dataset_id = %s ORDER BY id", (dataset_id,)
        ).fetchall()]  # fmt: skip
        group = [r[0] for r in conn.execute(
            "SELECT id FROM pgsearch.assets WHERE dataset_id = %s AND %s = ANY(groups)", (dataset_id, HOSTILE_GROUP)
        ).fetchall()]  # fmt: skip
        baseline = random_subset(np.array(candidates), 20, seed=5).tolist()
        curated_labels = _label_counts(conn, group)
        random_labels = _label_counts(conn, baseline)
        all_labels = _label_counts(conn, candidates)
        filename: dict[int, str] = dict(
            conn.execute(
                "SELECT id, filename FROM pgsearch.assets WHERE dataset_id = %s", (dataset_id,)
            ).fetchall()
        )
    assert int(_cell(page, "candidates")) == len(candidates) == summary["candidates"]
    assert int(_cell(page, "chosen")) == len(group) == 20
    assert int(_cell(page, "junk_excluded")) == 5
    noise_in_random = sum(1 for i in baseline if loaded["kind"][filename[i]] == "noise")
    assert int(_cell(page, "junk_in_random")) == noise_in_random
    clusters = data["clusters"]
    assert sum(clusters["curated"]) == 20 and sum(clusters["random"]) == 20 - noise_in_random
    assert sum(clusters["sizes"]) == len(candidates) - 5
    covered = sum(1 for v in clusters["curated"] if v > 0)
    covered_random = sum(1 for v in clusters["random"] if v > 0)
    assert int(_cell(page, "covered")) == covered == summary["covered"] == len(clusters["sizes"])
    assert int(_cell(page, "random_covered")) == covered_random == summary["random_covered"]
    assert float(_cell(page, "random_covered_pct")) == pytest.approx(
        100 * covered_random / len(clusters["sizes"]), abs=0.05
    )
    assert clusters["sizes"] == sorted(clusters["sizes"], reverse=True)
    for name in all_labels:
        assert int(_match(rf'data-label-all="{name}">(\d+)<', page)) == all_labels[name]
        assert int(_match(rf'data-label-curated="{name}">(\d+)<', page)) == curated_labels[name]
        assert int(_match(rf'data-label-random="{name}">(\d+)<', page)) == random_labels[name]

    # What a browser shows.
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install -y chromium)")
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2400",
            report.resolve().as_uri(),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot.exists(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    assert pixels.shape[:2] == (2400, 1200)
    assert pixels.std() > 20  # not blank
    blue = (np.abs(pixels - np.array([0x25, 0x63, 0xEB])).max(axis=2) < 30).sum()
    orange = (np.abs(pixels - np.array([0xF9, 0x73, 0x16])).max(axis=2) < 30).sum()
    assert blue > 2000 and orange > 2000, (blue, orange)  # the charts' bars are on screen
