"""`pgsearch duplicates` against the real embedded server: planted exact copies (the same bytes)
and near copies (+-1 grey level) among real digits loaded with the pixels model are found and
grouped; --add-to-group keeps one per group; stale results are recomputed; errors and outputs."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from pgsearch.cli import cli

HOSTILE = "0/<img src=x onerror=alert(1)>&\"q'.png"


def digit_image(pixels: np.ndarray, scale: int = 4) -> Image.Image:
    """A scikit-learn digit (8x8, 0..16) as a greyscale image, upscaled `scale` times."""
    grey = np.rint(pixels * 255 / 16).astype(np.uint8)
    return Image.fromarray(np.kron(grey, np.ones((scale, scale), dtype=np.uint8)), mode="L")


def write_folder(root: Path, *, count: int = 150, noise: int = 0, seed: int = 0) -> dict[str, Any]:
    """`count` real digits in label folders, plus planted duplicates: two exact copies (same bytes)
    of digit 0, one of digit 1 under a hostile name, a +-1 grey level copy of digits 2 and 3, a 2x
    larger copy of digit 4; and `noise` uniform noise images. Returns what was planted."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    names: list[str] = []
    for i in range(count):
        name = f"{digits.target[i]}/digit_{i:04d}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        digit_image(digits.images[i]).save(root / name)
        names.append(name)
    exact = [(names[0], f"{digits.target[0]}/copy_a.png"), (names[0], f"{digits.target[0]}/copy_b.png")]
    exact.append((names[1], HOSTILE))
    for original, copy in exact:
        (root / copy).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / original, root / copy)
    near = []
    for i in (2, 3):
        pixels = np.asarray(Image.open(root / names[i]), dtype=np.int16)
        moved = np.clip(pixels + rng.integers(-1, 2, size=pixels.shape), 0, 255).astype(np.uint8)
        copy = f"{digits.target[i]}/near_{i}.png"
        Image.fromarray(moved, mode="L").save(root / copy)
        near.append((names[i], copy))
    large = (names[4], f"{digits.target[4]}/large_4.png")
    digit_image(digits.images[4], scale=8).save(root / large[1])
    noisy = []
    for j in range(noise):
        name = f"{rng.integers(10)}/noise_{j}.png"
        Image.fromarray(rng.integers(0, 256, size=(32, 32), dtype=np.uint8), mode="L").save(root / name)
        noisy.append(name)
    return {"names": names, "exact": exact, "near": near, "large": large, "noise": noisy}


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def as_json(result: Result) -> list[dict[str, Any]]:
    return json.loads(ok(result).stdout)


@pytest.fixture
def loaded(dsn: str, tmp_path: Path) -> dict[str, Any]:
    truth = write_folder(tmp_path / "digits")
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
    truth["root"] = tmp_path / "digits"
    truth["dsn"] = dsn
    return truth


def _groups(rows: list[dict[str, Any]]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for r in rows:
        out.setdefault(r["duplicate_group"], set()).add(r["filename"])
    return out


def test_planted_exact_and_near_duplicates_are_grouped(loaded: dict[str, Any]) -> None:
    result = run("duplicates", "--dataset", "d", "-f", "json", "-n", "0")
    rows = as_json(result)
    assert "no neighbour graph yet" in result.stderr and "computed (first run)" in result.stderr
    assert "threshold 0.002" in result.stderr
    groups = sorted(_groups(rows).values(), key=lambda g: (-len(g), sorted(g)))
    names = loaded["names"]
    expected = [
        {names[0], "0/copy_a.png", "0/copy_b.png"},
        *({a, b} for a, b in [(names[1], HOSTILE), *loaded["near"], loaded["large"]]),
    ]
    assert sorted(groups, key=lambda g: (-len(g), sorted(g))) == sorted(
        expected, key=lambda g: (-len(g), sorted(g))
    )
    assert {"id", "filename", "duplicate_group", "distance", "representative", "kind", "group_size"} <= set(
        rows[0]
    )
    # Biggest group first; one representative per group, first in it, at distance 0.
    assert rows[0]["group_size"] == 3 and [r["group_size"] for r in rows] == sorted(
        (r["group_size"] for r in rows), reverse=True
    )
    by_group: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_group.setdefault(r["duplicate_group"], []).append(r)
    for members in by_group.values():
        assert members[0]["representative"] and sum(m["representative"] for m in members) == 1
        assert members[0]["distance"] == 0 and members[0]["duplicate_group"] == members[0]["id"]
        assert all(0 <= m["distance"] < 0.002 for m in members)
    kind = {r["filename"]: r["kind"] for r in rows}
    assert kind["0/copy_a.png"] == kind["0/copy_b.png"] == kind[names[0]] == kind[HOSTILE] == "exact"
    assert kind[loaded["near"][0][1]] == "near" and kind[loaded["large"][1]] == "near"
    # The default --keep (largest) keeps the 2x larger copy of digit 4.
    rep = {r["filename"] for r in rows if r["representative"]}
    assert loaded["large"][1] in rep and loaded["large"][0] not in rep


def test_stored_then_reused_then_stale_after_a_load(loaded: dict[str, Any], tmp_path: Path) -> None:
    first = ok(run("duplicates", "--dataset", "d", "-f", "json"))
    with psycopg.connect(loaded["dsn"]) as conn:
        space = conn.execute("SELECT id FROM pgsearch.embedding_spaces WHERE target = 'asset'").fetchone()[0]
        stored = conn.execute(
            f"SELECT count(*), count(*) FILTER (WHERE representative) FROM pgsearch.duplicates_{space}"
        ).fetchone()
        run_row = conn.execute("SELECT tool, items, flagged FROM pgsearch.curation_runs").fetchall()
    assert stored == (11, 5) and run_row == [("duplicates", 156, 6)]
    again = ok(run("duplicates", "--dataset", "d", "-f", "json"))
    assert "reused the stored results" in again.stderr and json.loads(again.stdout) == json.loads(
        first.stdout
    )
    # A threshold of another run is a recomputation, not a reuse.
    other = ok(run("duplicates", "--dataset", "d", "-f", "json", "--threshold", "0.0015"))
    assert "recomputed: threshold differ" in other.stderr
    # New files: a near copy of digit 5. The results are stale; the graph is brought up to date first.
    root = loaded["root"]
    pixels = np.asarray(Image.open(root / loaded["names"][5]), dtype=np.int16)
    Image.fromarray(np.clip(pixels + 1, 0, 255).astype(np.uint8), mode="L").save(root / "5" / "late.png")
    ok(run("load", str(root), "--dataset", "d", "--format", "folders", "-q"))
    stale = ok(run("duplicates", "--dataset", "d", "-f", "json", "-n", "0"))
    assert re.search(r"stale, 1 item added or changed since", stale.stderr), stale.stderr
    assert {loaded["names"][5], "5/late.png"} in _groups(json.loads(stale.stdout)).values()


def test_add_to_group_tags_all_but_the_kept_one(loaded: dict[str, Any]) -> None:
    result = ok(
        run(
            "duplicates",
            "--dataset",
            "d",
            "--add-to-group",
            "dupes",
            "--keep",
            "first",
            "-f",
            "json",
            "-n",
            "0",
        )
    )
    rows = json.loads(result.stdout)
    assert "added 6 of the 6 duplicates" in result.stderr
    with psycopg.connect(loaded["dsn"]) as conn:
        tagged = {r[0] for r in conn.execute("SELECT id FROM pgsearch.assets WHERE 'dupes' = ANY(groups)")}
    groups: dict[int, list[int]] = {}
    for r in rows:
        groups.setdefault(r["duplicate_group"], []).append(r["id"])
    for members in groups.values():
        kept = set(members) - tagged
        assert kept == {min(members)}  # --keep first: the lowest id
    assert len(tagged) == sum(len(m) - 1 for m in groups.values())
    # The group edit is not a change of the items: the next run reuses the stored results.
    again = ok(
        run("duplicates", "--dataset", "d", "--add-to-group", "dupes", "--keep", "first", "-f", "json")
    )
    assert "reused the stored results" in again.stderr and "added 0 of the 6 duplicates" in again.stderr
    # Another --keep is another run: the default listing keeps the largest again.
    plain = ok(run("duplicates", "--dataset", "d", "-f", "json"))
    assert "recomputed: keep differ" in plain.stderr


def test_errors_are_clear(dsn: str, tmp_path: Path) -> None:
    missing = run("duplicates", "--dataset", "nope")
    assert missing.exit_code != 0 and "no dataset named 'nope'" in missing.output
    write_folder(tmp_path / "f", count=5)
    ok(run("load", str(tmp_path / "f"), "--dataset", "raw", "--format", "folders", "--no-embed", "-q"))
    bare = run("duplicates", "--dataset", "raw")
    assert (
        bare.exit_code != 0
        and "no asset embeddings yet; run `pgsearch embed --dataset raw --model pixels`" in bare.output
    )
    for bad in ("0", "-0.1", "1.5", "nan"):
        result = run("duplicates", "--dataset", "raw", "--threshold", bad)
        assert result.exit_code != 0 and "--threshold is a cosine distance above 0" in result.output, bad
    keep = run("duplicates", "--dataset", "raw", "--keep", "largest")
    assert keep.exit_code == 2 and "add --add-to-group NAME" in keep.output
    shapes = run("duplicates", "--dataset", "raw", "--shapes", "--add-to-group", "x")
    assert shapes.exit_code == 2 and "--add-to-group works on assets" in shapes.output
    empty = run("duplicates", "--dataset", "raw", "--add-to-group", " ")
    assert empty.exit_code == 2 and "must not be empty" in empty.output
    assert run("duplicates", "--dataset", "raw", "--keep", "biggest").exit_code == 2
    assert run("duplicates", "--help").exit_code == 0


def test_csv_html_and_table_outputs(
    loaded: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = ok(run("duplicates", "--dataset", "d", "-f", "csv", "-n", "0")).stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 11 and {
        "id",
        "filename",
        "duplicate_group",
        "distance",
        "representative",
        "kind",
    } <= set(rows[0])
    page = tmp_path / "dupes.html"
    result = ok(run("duplicates", "--dataset", "d", "-o", str(page)))
    assert "wrote 11 results" in result.stderr
    html = page.read_text()
    assert html.count("data:image/jpeg;base64,") == 11
    assert html.count("<h2>") == 5 and "kept" in html and "group " in html
    assert (
        "<img src=x onerror" not in html
        and "&lt;img src=x onerror=alert(1)&gt;&amp;&quot;q&#x27;.png" in html
    )
    table = ok(run("duplicates", "--dataset", "d", "-n", "3")).stdout
    assert table.splitlines()[0].split()[:3] == ["duplicate_group", "id", "filename"] and "(3 rows)" in table
    # -f html without -o writes a default file and never overwrites it.
    monkeypatch.chdir(tmp_path)
    assert ok(run("duplicates", "-d", "d", "-f", "html")) and (tmp_path / "pgsearch-duplicates.html").exists()
    again = run("duplicates", "-d", "d", "-f", "html")
    assert again.exit_code != 0 and "does not overwrite" in again.output


def test_chaining_guard_keeps_members_within_the_threshold_of_the_kept_one(dsn: str, tmp_path: Path) -> None:
    """A - B - C - D - E, each step 0.03 (under the threshold 0.05), two steps ~0.12: one connected
    component, but the group kept around A (the largest image) holds B only; C, D, E are grouped
    again as stars of their graph edges: C (the lowest id) keeps D; E, next to D only, is no
    duplicate of any kept item and is left out (said on stderr)."""
    root = tmp_path / "chain"
    root.mkdir()
    names = ["a.png", "b.png", "c.png", "d.png", "e.png", "f.png", "g.png"]
    for i, name in enumerate(names):
        size = 64 if name == "a.png" else 32
        Image.new("RGB", (size, size), (i * 30, 0, 0)).save(root / name)
    theta = np.arccos(1 - 0.03)
    chain = [[np.cos(i * theta), np.sin(i * theta), 0, 0] for i in range(5)]
    vectors = np.array([*chain, [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32)
    np.savez(tmp_path / "vectors.npz", filenames=np.array(names), embeddings=vectors)
    ok(run("load", str(root), "--dataset", "chain", "--embeddings", str(tmp_path / "vectors.npz"), "-q"))
    result = ok(run("duplicates", "--dataset", "chain", "--threshold", "0.05", "-f", "json"))
    rows = as_json(result)
    groups = {frozenset(g) for g in _groups(rows).values()}
    assert groups == {frozenset({"a.png", "b.png"}), frozenset({"c.png", "d.png"})}
    assert {r["filename"] for r in rows if r["representative"]} == {"a.png", "c.png"}
    assert all(r["distance"] == pytest.approx(0.03, abs=2e-3) for r in rows if not r["representative"])
    assert "1 more items are near a member of a group" in result.stderr
    # An unknown model family says that the threshold is a fallback when none is given.
    fallback = ok(run("duplicates", "--dataset", "chain", "-f", "json"))
    assert "has no measured default" in fallback.stderr


def test_model_families_and_help_agree() -> None:
    from pgsearch.commands.duplicates import HELP_THRESHOLDS
    from pgsearch.curate import duplicates as dup

    assert dup.model_family("pixels") == "pixels"
    assert dup.model_family("openclip:ViT-B-16:datacomp_xl_s13b_b90k") == "openclip"
    assert dup.model_family("timm:vit_small_patch14_dinov2.lvd142m") == "timm"
    assert dup.model_family("openclip:pgsearch-tiny:random") == "random"
    assert dup.model_family("external:vectors.npz") is None
    for family in ("pixels", "openclip", "timm"):
        assert f"{family}" in HELP_THRESHOLDS and f"{dup.THRESHOLDS[family]:g}" in HELP_THRESHOLDS
    assert f"other models {dup.FALLBACK_THRESHOLD:g}" in HELP_THRESHOLDS


def test_shapes_drawn_twice_are_exact_duplicates(dsn: str, tmp_path: Path) -> None:
    from pgsearch.demo_data import generate

    images, annotations, _ = generate(tmp_path / "demo", n=12, seed=3)
    coco = json.loads(annotations.read_text())
    twice = dict(coco["annotations"][0], id=max(a["id"] for a in coco["annotations"]) + 1)
    coco["annotations"].append(twice)
    annotations.write_text(json.dumps(coco))
    ok(
        run(
            "load",
            str(images),
            "-d",
            "s",
            "--annotations",
            str(annotations),
            "--format",
            "coco",
            "--model",
            "pixels",
            "-q",
        )
    )
    rows = as_json(run("duplicates", "-d", "s", "--shapes", "-f", "json", "-n", "0"))
    exact = [r for r in rows if r["kind"] == "exact"]
    assert len(exact) == 2 and exact[0]["duplicate_group"] == exact[1]["duplicate_group"]
    assert exact[0]["asset_id"] == exact[1]["asset_id"] and {"label", "bbox_x"} <= set(exact[0])
    shapes = as_json(run("outliers", "-d", "s", "--shapes", "-f", "json", "-n", "3"))
    assert len(shapes) == 3 and {"asset_id", "label", "uniqueness"} <= set(shapes[0])
