"""`pgsearch mislabels` against a real embedded PostgreSQL: generated datasets whose wrong labels
are known (a classification dataset of colour classes with some images in the wrong folder, a COCO
dataset of coloured boxes with some boxes given the wrong category), the outputs, stale results,
and the errors a user can fix."""

from __future__ import annotations

import csv
import io
import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from pgsearch.cli import cli
from pgsearch.commands import mislabels as command
from pgsearch.curate import mislabels as ml

COLOURS = {
    "red": (215, 45, 40),
    "green": (45, 180, 60),
    "blue": (40, 70, 215),
    "yellow": (225, 205, 45),
}
PER_CLASS = 12
# (true colour, folder it is filed under, index): the planted mistakes.
MISFILED = [("red", "green", 0), ("blue", "yellow", 1), ("green", "red", 2)]


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args))
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def fails(result: Result, *needles: str) -> str:
    """The error of a command that must fail cleanly: non-zero exit, the message, no traceback."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    text = result.output
    assert "Traceback" not in text
    for needle in needles:
        assert needle in text, text
    return text


def colour_image(colour: tuple[int, int, int], seed: int, size: int = 32) -> Image.Image:
    """A picture of one colour class: its colour with a per-image shift, a darker shape in it,
    and pixel noise."""
    rng = np.random.default_rng(seed)
    base = np.clip(np.array(colour) + rng.integers(-25, 26, size=3), 0, 255)
    pixels = np.tile(base, (size, size, 1)).astype(np.int16)
    x, y = rng.integers(0, size // 2, size=2)
    w, h = rng.integers(6, size // 2, size=2)
    pixels[y : y + h, x : x + w] = (base * 0.6).astype(np.int16)
    pixels += rng.integers(-12, 13, size=pixels.shape, dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def make_classification(root: Path) -> dict[str, tuple[str, str]]:
    """Folders of colour classes, some images filed under the wrong one: filename -> (true
    label, filed label)."""
    truth: dict[str, tuple[str, str]] = {}
    seed = 0
    for label, colour in COLOURS.items():
        for i in range(PER_CLASS):
            seed += 1
            name = f"{label}/{label}_{i:02d}.png"
            (root / label).mkdir(parents=True, exist_ok=True)
            colour_image(colour, seed).save(root / name)
            truth[name] = (label, label)
    for true, filed, i in MISFILED:
        seed += 1
        name = f"{filed}/odd_{i}.png"
        colour_image(COLOURS[true], seed).save(root / name)
        truth[name] = (true, filed)
    return truth


BOX_CLASSES = {"apple": (210, 40, 40), "leaf": (40, 170, 50), "sky": (50, 90, 220)}


def make_boxes(root: Path, images: int = 18) -> tuple[Path, dict[tuple[str, int], tuple[str, str]]]:
    """Images with two coloured boxes of different classes each, and a COCO file naming them; a
    few boxes carry the wrong category (still not the other box's, so every image keeps two labels). Returns the COCO path and (filename, box index) -> (true
    label, given label)."""
    rng = random.Random(5)
    names = list(BOX_CLASSES)
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(names)]
    coco: dict[str, Any] = {"images": [], "annotations": [], "categories": categories}
    truth: dict[tuple[str, int], tuple[str, str]] = {}
    wrong = {(2, 0), (7, 1), (12, 0)}  # given the class that is not in the picture
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        filename = f"scene_{i:02d}.png"
        pixels = np.full((96, 96, 3), 128, dtype=np.int16)
        pixels += np.random.default_rng(i).integers(-6, 7, size=pixels.shape, dtype=np.int16)
        pair = rng.sample(names, 2)
        coco["images"].append({"id": i + 1, "file_name": filename, "width": 96, "height": 96})
        for j, (label, (x, y)) in enumerate(zip(pair, [(8, 8), (52, 50)], strict=True)):
            shift = np.array([rng.randint(-20, 20) for _ in range(3)])
            pixels[y : y + 36, x : x + 36] = np.clip(np.array(BOX_CLASSES[label]) + shift, 0, 255)
            given = next(n for n in names if n not in pair) if (i, j) in wrong else label
            truth[(filename, j)] = (label, given)
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": names.index(given) + 1,
                    "bbox": [x, y, 36, 36],
                    "area": 36 * 36,
                    "iscrowd": 0,
                }
            )
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(root / "images" / filename)
    path = root / "coco.json"
    path.write_text(json.dumps(coco))
    return path, truth


def load(*args: str) -> None:
    run("load", *args, "--workers", "0", "--quiet")


@pytest.fixture
def classes(dsn: str, tmp_path: Path) -> dict[str, tuple[str, str]]:
    truth = make_classification(tmp_path / "colours")
    load(str(tmp_path / "colours"), "-d", "colours", "--format", "folders", "--model", "pixels")
    return truth


@pytest.fixture
def boxes(dsn: str, tmp_path: Path) -> dict[tuple[str, int], tuple[str, str]]:
    coco, truth = make_boxes(tmp_path / "boxes")
    load(
        str(tmp_path / "boxes" / "images"), "-d", "boxes", "--annotations", str(coco), "--format", "coco",
        "--model", "pixels",
    )  # fmt: skip
    return truth


def as_json(*args: str) -> list[dict[str, Any]]:
    result = run("mislabels", *args, "-f", "json", "--quiet")
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


# -- finding them ----------------------------------------------------------------------------------


def test_misfiled_images_are_found_with_the_right_suggestion(classes: dict[str, tuple[str, str]]) -> None:
    rows = as_json("-d", "colours")
    wrong = {name: true for name, (true, filed) in classes.items() if true != filed}
    assert {r["filename"] for r in rows} == set(wrong)
    for row in rows:
        assert row["suggested_label"] == wrong[row["filename"]]
        assert row["label"] == row["filename"].split("/")[0]
        assert ml.DEFAULT_THRESHOLD <= row["mislabel_score"] <= 1
        assert set(row) >= {"id", "filename", "label", "suggested_label", "mislabel_score"}
    scores = [r["mislabel_score"] for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_every_labelled_item_is_stored(classes: dict[str, tuple[str, str]], conn: psycopg.Connection) -> None:
    run("mislabels", "-d", "colours", "--quiet")
    stored = conn.execute(
        "SELECT a.filename, m.label, m.mislabel_score, m.suggested_label FROM pgsearch.mislabel_scores m"
        " JOIN pgsearch.assets a ON a.id = m.item_id"
    ).fetchall()
    assert len(stored) == len(classes)
    for filename, label, score, suggested in stored:
        true, filed = classes[filename]
        assert label == filed and 0 <= score <= 1
        if true == filed:
            assert score < 0.5 and suggested is None, (filename, score, suggested)
        else:
            assert score >= ml.DEFAULT_THRESHOLD and suggested == true
    runs = conn.execute("SELECT tool, target, items, flagged FROM pgsearch.curation_runs").fetchall()
    assert runs == [("mislabels", "asset", len(classes), len(MISFILED))]


def test_wrong_box_categories_are_found_on_shapes(boxes: dict[tuple[str, int], tuple[str, str]]) -> None:
    rows = as_json("-d", "boxes", "--shapes")
    wrong = {key: true for key, (true, given) in boxes.items() if true != given}
    found = {(r["filename"], 0 if r["bbox_x"] < 40 else 1): r for r in rows}
    assert set(found) == set(wrong)
    for key, row in found.items():
        assert row["suggested_label"] == wrong[key] and row["label"] == boxes[key][1]
        assert row["asset_id"] is not None and row["kind"] == "bbox"


def test_assets_with_several_labels_point_to_shapes(boxes: dict[tuple[str, int], tuple[str, str]]) -> None:
    fails(run("mislabels", "-d", "boxes", ok=False), "several different labels", "--shapes")


def test_assets_with_several_labels_or_none_are_skipped_and_counted(dsn: str, tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    make_classification(root)
    colour_image(COLOURS["red"], 999).save(root / "unfiled.png")  # in the root: no label
    load(str(root), "-d", "mixed", "--format", "folders", "--model", "pixels")
    with psycopg.connect(dsn) as conn:  # a second label on one asset
        conn.execute(
            "INSERT INTO pgsearch.shapes (dataset_id, asset_id, label_id, kind)"
            " SELECT a.dataset_id, a.id, l.id, 'tag' FROM pgsearch.assets a JOIN pgsearch.labels l"
            "   ON l.dataset_id = a.dataset_id AND l.name = 'blue' WHERE a.filename = 'red/red_03.png'"
        )
    result = run("mislabels", "-d", "mixed", "-f", "json")
    rows = json.loads(result.stdout)
    assert "red/red_03.png" not in {r["filename"] for r in rows}
    assert "1 with several labels, 1 without a label" in result.stderr
    assert f"{len(COLOURS) * PER_CLASS + len(MISFILED) - 1} scored" in result.stderr
    # Skipped items do not make the results look stale.
    assert "reused" in run("mislabels", "-d", "mixed").stderr


# -- outputs ---------------------------------------------------------------------------------------


def test_table_csv_and_limit(classes: dict[str, tuple[str, str]], tmp_path: Path) -> None:
    table = run("mislabels", "-d", "colours", "--quiet").stdout
    assert table.splitlines()[0].split() == ["id", "filename", "label", "suggested_label", "mislabel_score"]
    assert "(3 rows)" in table
    out = tmp_path / "m.csv"
    run("mislabels", "-d", "colours", "-o", str(out), "--quiet")  # the format follows the extension
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 3 and {"id", "filename", "label", "suggested_label", "mislabel_score"} <= set(rows[0])
    one = run("mislabels", "-d", "colours", "-n", "1", "-f", "csv")
    assert len(list(csv.DictReader(io.StringIO(one.stdout)))) == 1
    assert "1 shown (-n 0 shows all)" in one.stderr
    high = as_json("-d", "colours", "--threshold", "1")
    assert high == []
    empty = run("mislabels", "-d", "colours", "--threshold", "1", "-f", "csv", "--quiet").stdout
    assert empty.splitlines()[0].startswith("id,filename,label,suggested_label,mislabel_score")


def test_html_shows_items_suggestions_and_differently_labelled_neighbours(
    classes: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    page_path = tmp_path / "m.html"
    run("mislabels", "-d", "colours", "-o", str(page_path), "--quiet")
    page = page_path.read_text()
    sections = page.split('<section class="item">')[1:]
    assert len(sections) == len(MISFILED)
    for section in sections:
        filename = re.search(r'<div class="name">([^<]+)</div>', section).group(1)  # type: ignore[union-attr]
        true, filed = classes[filename]
        assert (
            f'<span class="from">{filed}</span>' in section and f'<span class="to">{true}</span>' in section
        )
        # the item and HTML_NEIGHBOURS neighbours, each a thumbnail, all of the suggested class
        assert section.count("data:image/jpeg;base64,") == 1 + command.HTML_NEIGHBOURS
        assert section.count(f"<span>{true}</span>") == command.HTML_NEIGHBOURS


def test_html_of_shapes_and_default_file(
    boxes: dict[tuple[str, int], tuple[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run("mislabels", "-d", "boxes", "--shapes", "-f", "html", "--quiet")
    page = (tmp_path / command.DEFAULT_HTML).read_text()
    assert page.count('<section class="item">') == 3 and "data:image/jpeg;base64," in page
    again = run("mislabels", "-d", "boxes", "--shapes", "-f", "html", ok=False)
    fails(again, "exists", "does not overwrite")


# -- reuse and staleness ---------------------------------------------------------------------------


def test_results_are_reused_then_stale_after_a_load(
    classes: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    first = run("mislabels", "-d", "colours")
    assert "recomputed (no earlier run)" in first.stderr
    second = run("mislabels", "-d", "colours")
    assert "reused the stored results of run" in second.stderr and second.stdout == first.stdout
    root = tmp_path / "colours"
    for i in range(3):
        colour_image(COLOURS["blue"], 500 + i).save(root / "blue" / f"late_{i}.png")
    colour_image(COLOURS["yellow"], 600).save(root / "red" / "late_odd.png")
    load(str(root), "-d", "colours", "--format", "folders", "--model", "pixels")
    third = run("mislabels", "-d", "colours", "-f", "json")
    assert "stale: 4 items added, changed or removed since" in third.stderr
    assert "recomputed" in third.stderr
    found = {r["filename"]: r["suggested_label"] for r in json.loads(third.stdout)}
    assert found.get("red/late_odd.png") == "yellow" and len(found) == len(MISFILED) + 1
    assert "reused" in run("mislabels", "-d", "colours").stderr
    assert "recomputed (--recompute)" in run("mislabels", "-d", "colours", "--recompute").stderr


def test_a_renamed_label_makes_the_results_stale(
    classes: dict[str, tuple[str, str]], conn: psycopg.Connection
) -> None:
    run("mislabels", "-d", "colours", "--quiet")
    conn.execute(
        "SELECT pgsearch.rename_label((SELECT id FROM pgsearch.datasets WHERE name = 'colours'), 'red', 'crimson')"
    )
    conn.commit()
    result = run("mislabels", "-d", "colours", "-f", "json")
    assert "stale" in result.stderr and "recomputed" in result.stderr
    assert "crimson" in {r["label"] for r in json.loads(result.stdout)} | {
        r["suggested_label"] for r in json.loads(result.stdout)
    }


def test_scores_are_fields_of_the_query_language(classes: dict[str, tuple[str, str]]) -> None:
    run("mislabels", "-d", "colours", "--quiet")
    result = run("query", "mislabel_score >= 0.8", "-d", "colours", "-f", "json")
    wrong = {name for name, (true, filed) in classes.items() if true != filed}
    assert {r["filename"] for r in json.loads(result.stdout)} == wrong


def test_a_reused_run_becomes_the_one_the_fields_read(classes: dict[str, tuple[str, str]], dsn: str) -> None:
    """mislabels --model pixels, then another model, then pixels again (reused): the fields read
    the pixels results again, the run recorded again as the latest."""
    from test_outliers import add_model

    add_model(dsn, "colours")
    wrong = {name for name, (true, filed) in classes.items() if true != filed}

    def queried() -> set[str]:
        result = run("query", "mislabel_score >= 0.8", "-d", "colours", "-f", "json")
        return {r["filename"] for r in json.loads(result.stdout)}

    run("mislabels", "-d", "colours", "--model", "pixels", "--quiet")
    assert queried() == wrong
    run("mislabels", "-d", "colours", "--model", "shifted", "--quiet")
    assert queried() != wrong  # another model's neighbours: other scores
    again = run("mislabels", "-d", "colours", "--model", "pixels", "-f", "json")
    assert "reused the stored results of run 1 (" in again.stderr
    assert "recorded again as run 3, the latest, so that mislabel_score and suggested_label" in again.stderr
    assert queried() == wrong
    with psycopg.connect(dsn) as conn:
        latest = conn.execute(
            "SELECT run_id, model, params ->> 'recorded_from' FROM pgsearch.v_curation_runs WHERE is_latest"
        ).fetchall()
        listed = conn.execute("SELECT DISTINCT run_id FROM pgsearch.v_mislabels").fetchall()
    assert latest == [(3, "pixels", "1")] and listed == [(3,)]
    last = run("mislabels", "-d", "colours", "--model", "pixels")
    assert "reused the stored results of run 3 (" in last.stderr and "recorded again" not in last.stderr


# -- errors ----------------------------------------------------------------------------------------


def test_no_labels(dsn: str, tmp_path: Path) -> None:
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(4):
        colour_image(COLOURS["red"], i).save(root / f"img_{i}.png")
    load(str(root), "-d", "flat", "--model", "pixels")
    fails(run("mislabels", "-d", "flat", ok=False), "no labelled assets", "--format folders")
    fails(run("mislabels", "-d", "flat", "--shapes", ok=False), "no shapes", "--annotations")


def test_tags_have_no_shape_crops(classes: dict[str, tuple[str, str]]) -> None:
    fails(run("mislabels", "-d", "colours", "--shapes", ok=False), "whole-image tags", "leave out --shapes")


def test_no_embeddings(dsn: str, tmp_path: Path) -> None:
    make_classification(tmp_path / "c")
    load(str(tmp_path / "c"), "-d", "c", "--format", "folders", "--no-embed")
    fails(run("mislabels", "-d", "c", ok=False), "no asset embeddings", "pgsearch embed --dataset c")


def test_a_single_label(dsn: str, tmp_path: Path) -> None:
    root = tmp_path / "one"
    for i in range(5):
        (root / "cat").mkdir(parents=True, exist_ok=True)
        colour_image(COLOURS["red"], i).save(root / "cat" / f"{i}.png")
    load(str(root), "-d", "one", "--format", "folders", "--model", "pixels")
    fails(run("mislabels", "-d", "one", ok=False), "same label ('cat')", "at least two")


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2", "nan", "inf"])
def test_bad_threshold(value: str) -> None:
    fails(
        run("mislabels", "-d", "any", "--threshold", value, ok=False), "--threshold", "above 0 and at most 1"
    )


def test_bad_threshold_word_and_unknown_dataset(dsn: str) -> None:
    fails(run("mislabels", "-d", "any", "--threshold", "high", ok=False), "'high' is not a valid float")
    fails(run("mislabels", "-d", "nope", ok=False), "no dataset named 'nope'")


# -- the algorithm on its own ----------------------------------------------------------------------


def test_threshold_in_help_is_the_modules() -> None:
    assert command.DEFAULT_THRESHOLD == ml.DEFAULT_THRESHOLD
    assert f"default: {ml.DEFAULT_THRESHOLD}" in run("mislabels", "--help").stdout


def test_tally_matches_a_dense_vote() -> None:
    rng = np.random.default_rng(0)
    n, k, labels = 500, 12, 5
    codes = rng.integers(-2, labels, size=(n, k)).astype(np.int32)
    weights = rng.random((n, k)).astype(np.float32)
    own = rng.integers(0, labels, size=n).astype(np.int32)
    own_w, total, best, best_w = ml.tally(codes, weights, own)
    dense = np.zeros((n, labels))
    for i in range(n):
        for j in range(k):
            if codes[i, j] >= 0:
                dense[i, codes[i, j]] += weights[i, j]
    assert np.allclose(own_w, dense[np.arange(n), own]) and np.allclose(total, dense.sum(1))
    others = dense.copy()
    others[np.arange(n), own] = 0
    assert np.allclose(best_w, others.max(1))
    # the code named is one that carries the best weight
    chosen = others[np.arange(n), np.maximum(best, 0)]
    assert np.allclose(np.where(best_w > 0, chosen, 0), np.where(best_w > 0, best_w, 0), atol=1e-5)
    assert ((best >= 0) == (best_w > 0)).all()


def test_an_outlier_far_from_everything_keeps_its_label() -> None:
    # Two tight clusters of three, and one item whose nearest neighbours are far outside their own
    # neighbourhoods (scale: the distance to their 2nd neighbour, 0.01).
    ids = np.arange(7)
    positions = np.array([[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [3, 4], [0, 3]])
    distances = np.full((7, 2), 0.01, dtype=np.float32)
    distances[6] = 0.9
    codes = np.array([0, 0, 0, 1, 1, 1, 1], dtype=np.int32)
    scores = ml.score_graph(ids, positions, distances, codes, k=2, scale_rank=2)
    assert scores.score[6] < 0.01 and scores.suggested[6] == -1 and scores.support[6] < 1e-6
    assert (scores.score[:6] < 0.3).all()
    codes[0] = 1  # a mistake in the middle of cluster 0: both its neighbours say 0
    scores = ml.score_graph(ids, positions, distances, codes, k=2, scale_rank=2)
    assert np.isclose(scores.support[0], 2 * np.exp(-1))
    assert (
        np.isclose(scores.score[0], 1 - ml.PRIOR / (2 * np.exp(-1) + ml.PRIOR)) and scores.suggested[0] == 0
    )
