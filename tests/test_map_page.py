"""The 2-D map page (pgsearch.curate.mappage): one self-contained file, data escaped, thumbnails
embedded, and what headless Chromium draws and selects: deep links (#select=...) and synthetic
mouse events, checked against a plain-Python evaluation of the expression the page writes.
No database: the round trip through `pgsearch query` is tested elsewhere."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import shlex
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pgsearch.curate.mappage import NOISE_COLOUR, PALETTE, map_page_html, write_map_page
from pgsearch.translator import Catalog, compile_query

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install -y chromium)"
)
HOSTILE = "</script><img src=x onerror=alert(1)>\u2028&amp;.jpg"
CLUSTERS = 20
N_BIG = 100_000
CATALOG = Catalog(dataset_id=1, dataset_name="pets", asset_run=1, shape_run=2)


def _points(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """`n` points in CLUSTERS Gaussian blobs on a 5 x 4 grid, 5% noise, ids shuffled (the page
    sorts them)."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, CLUSTERS, n)
    xs = (cluster % 5) * 10.0 + rng.normal(0, 1.6, n)
    ys = (cluster // 5) * 10.0 + rng.normal(0, 1.6, n)
    noise = rng.random(n) < 0.05
    ids = rng.permutation(np.arange(1, n + 1)) * 3
    return [
        {
            "id": int(ids[i]),
            "x": float(xs[i]),
            "y": float(ys[i]),
            "cluster": -1 if noise[i] else int(cluster[i]),
            "filename": f"img_{ids[i]:06d}.jpg",
            "path": None,
        }
        for i in range(n)
    ]


def _inside(x: float, y: float, vertices: list[list[float]]) -> bool:
    """PostgreSQL's point <@ polygon: the signed crossings of a ray from the point do not sum to
    zero (point_inside in geo_ops.c), the nonzero winding rule."""
    winding = 0
    for (x1, y1), (x2, y2) in zip(vertices[-1:] + vertices[:-1], vertices, strict=True):
        side = (x2 - x1) * (y - y1) - (x - x1) * (y2 - y1)
        if y1 <= y < y2 and side > 0:
            winding += 1
        elif y2 <= y < y1 and side < 0:
            winding -= 1
    return winding != 0


def _even_odd(x: float, y: float, vertices: list[list[float]]) -> bool:
    """Ray crossing parity, which differs from _inside where the outline crosses itself."""
    inside = False
    j = len(vertices) - 1
    for i in range(len(vertices)):
        (xi, yi), (xj, yj) = vertices[i], vertices[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def _in_rect(p: dict[str, Any], a: float, b: float, c: float, d: float) -> bool:
    return bool(a <= p["x"] <= b and c <= p["y"] <= d)


def _ids(points: list[dict[str, Any]], keep: Any) -> list[int]:
    return sorted(p["id"] for p in points if keep(p))


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _dump(page: Path, profile: Path, fragment: str = "") -> str:
    done = _chromium(
        "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri() + fragment, profile=profile
    )
    assert 'data-ready="true"' in done.stdout, done.stderr[-3000:]
    return done.stdout


def _element(dom: str, element_id: str) -> str:
    """The text of the element with that id, unescaped (its content holds no tags)."""
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert match, element_id
    return html.unescape(match.group(1))


def _selected_ids(dom: str) -> list[int]:
    text = _element(dom, "selection-ids")
    return [int(v) for v in text.split(",")] if text else []


def _script_json(page: str, element_id: str) -> Any:
    match = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page, re.S)
    assert match, element_id
    return json.loads(match.group(1))


RECT = re.compile(r"x >= (\S+) and x <= (\S+) and y >= (\S+) and y <= (\S+)")
LASSO = re.compile(r"inside\(x, y, (\[.*\])\)")


def _rect_bounds(expression: str) -> list[float]:
    match = RECT.fullmatch(expression)
    assert match, expression
    return [float(v) for v in match.groups()]


def _lasso_vertices(expression: str) -> list[list[float]]:
    match = LASSO.fullmatch(expression)
    assert match, expression
    vertices = json.loads(match.group(1))
    assert all(len(v) == 2 for v in vertices) and len(vertices) >= 3
    return [[float(a), float(b)] for a, b in vertices]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], Path]:
    points = _points(N_BIG)
    page = write_map_page(
        points,
        tmp_path_factory.mktemp("map") / "map.html",
        dataset='pets\' "best"',
        summary="run 4 · 100,000 assets · 20 clusters · noise 5.0%",
    )
    return points, page


# ---- the file itself ----


def test_page_is_self_contained(tmp_path: Path) -> None:
    page = write_map_page(_points(500), tmp_path / "map.html", dataset="pets").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert "<link" not in page and not re.search(r"<script[^>]*\bsrc=", page)
    assert "pgsearchMap" in page and "<canvas" in page
    data = _script_json(page, "map-data")
    assert len(data["ids"]) == 500 and data["ids"] == sorted(data["ids"])
    assert set(data) == {"ids", "x", "y", "cluster", "filename"}  # no labels on an asset map


def test_hostile_text_cannot_leave_its_script(tmp_path: Path) -> None:
    points: list[dict[str, Any]] = [
        {"id": 1, "x": 0.5, "y": 1.5, "cluster": 0, "filename": HOSTILE, "path": None, "label": HOSTILE},
        {
            "id": 2,
            "x": 1.0,
            "y": 2.0,
            "cluster": None,
            "filename": "a\udcff.jpg",
            "path": None,
            "label": None,
        },
    ]
    page = map_page_html(
        points, dataset="</script><b>ds", target="shape", title="<i>t</i>", summary="<u>s</u>", thumbnails=0
    )
    assert "<img src=x" not in page and "</script><b>" not in page
    assert "<i>t</i>" not in page and "<u>s</u>" not in page and "\u2028" not in page
    for body in re.findall(r'<script type="application/json" id="[^"]+">(.*?)</script>', page, re.S):
        assert not re.search(r"[<>&\u2028\u2029]", body)
    data = _script_json(page, "map-data")
    assert data["filename"] == [HOSTILE, "a\udcff.jpg"] and data["label"] == [HOSTILE, None]
    assert _script_json(page, "map-config")["dataset"] == "</script><b>ds"
    page.encode("utf-8")  # lone surrogates came out escaped


def test_points_without_coordinates_are_left_out(tmp_path: Path) -> None:
    points = _points(10)
    points[3]["x"] = float("nan")
    points[4]["y"] = None
    page = map_page_html(points, dataset="pets")
    assert len(_script_json(page, "map-data")["ids"]) == 8
    assert "2 without finite coordinates left out" in page


def test_unknown_target_is_refused() -> None:
    with pytest.raises(ValueError, match="target"):
        map_page_html([], dataset="pets", target="video")


def _jpeg(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert image.format == "JPEG" and max(image.size) == 64
    return image.convert("RGB")


def _mean(image: Image.Image) -> np.ndarray:
    mean: np.ndarray = np.asarray(image, dtype=float).reshape(-1, 3).mean(axis=0)
    return mean


def test_thumbnails_sampled_evenly_missing_files_are_not_errors(tmp_path: Path) -> None:
    Image.new("RGB", (300, 200), (220, 30, 30)).save(tmp_path / "red.png")
    Image.new("RGB", (120, 240), (30, 30, 220)).save(tmp_path / "blue.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    points = _points(12)
    for i, p in enumerate(sorted(points, key=lambda p: p["id"])):
        p["path"] = [str(tmp_path / "red.png"), str(tmp_path / "blue.jpg"), None][i % 3]
    ordered = sorted(points, key=lambda p: p["id"])
    ordered[0]["path"] = str(tmp_path / "missing.png")
    ordered[1]["path"] = str(tmp_path / "broken.jpg")

    thumbs = _script_json(map_page_html(points, dataset="pets"), "map-thumbs")
    with_path = [i for i, p in enumerate(ordered) if p["path"]]
    assert sorted(thumbs, key=int) == [str(i) for i in with_path[2:]]  # missing and broken: none
    for key, b64 in thumbs.items():
        red = ordered[int(key)]["path"].endswith("red.png")
        mean = _mean(_jpeg(b64))
        assert (mean[0] > 150 and mean[2] < 80) if red else (mean[2] > 150 and mean[0] < 80), key

    # A smaller budget: evenly spread over the points with a path, in id order.
    sample = _script_json(map_page_html(points, dataset="pets", thumbnails=3), "map-thumbs")
    chosen = [with_path[(k * len(with_path)) // 3] for k in range(3)]
    assert set(sample) == {str(i) for i in chosen if i not in (0, 1)}
    assert _script_json(map_page_html(points, dataset="pets", thumbnails=0), "map-thumbs") == {}


def test_shape_thumbnail_is_the_box(tmp_path: Path) -> None:
    image = Image.new("RGB", (400, 200), (220, 30, 30))
    image.paste((30, 30, 220), (250, 50, 350, 150))
    image.save(tmp_path / "two.png")
    shape = {
        "id": 9,
        "x": 1.0,
        "y": 2.0,
        "cluster": 3,
        "filename": "two.png",
        "path": str(tmp_path / "two.png"),
        "label": "blue thing",
        "bbox_x": 250,
        "bbox_y": 50,
        "bbox_width": 100,
        "bbox_height": 100,
    }
    tag = {**shape, "id": 10, "bbox_x": None, "bbox_y": None, "bbox_width": None, "bbox_height": None}
    page = map_page_html([shape, tag], dataset="pets", target="shape")
    thumbs = _script_json(page, "map-thumbs")
    crop, whole = _jpeg(thumbs["0"]), _jpeg(thumbs["1"])
    assert _mean(crop.crop((10, 10, 54, 54)))[2] > 180  # the inside of the box is blue
    assert crop.size == (64, 64) and whole.size == (64, 32)  # a tag shows the whole image
    assert _script_json(page, "map-data")["label"] == ["blue thing", "blue thing"]


# ---- what Chromium draws ----


@needs_chromium
def test_chromium_draws_the_clusters_in_their_colours(
    big: tuple[list[dict[str, Any]], Path], tmp_path: Path
) -> None:
    _, page = big
    shot = tmp_path / "shot.png"
    done = _chromium(
        f"--screenshot={shot}",
        "--window-size=1200,900",
        "--virtual-time-budget=5000",
        page.resolve().as_uri(),
        profile=tmp_path / "profile",
    )
    assert shot.exists(), done.stderr[-3000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    assert pixels.shape[:2] == (900, 1200)
    plot = pixels[100:, :820]  # left of the side panel, below the header

    def count(hex_colour: str) -> int:
        colour = np.array([int(hex_colour[k : k + 2], 16) for k in (1, 3, 5)])
        return int((np.abs(plot - colour).max(axis=2) <= 10).sum())

    shown = [c for c in PALETTE if count(c) > 300]
    assert len(shown) == CLUSTERS, [(c, count(c)) for c in PALETTE]  # every cluster, in its colour
    assert count(NOISE_COLOUR) > 100  # noise: grey


@needs_chromium
def test_first_draw_of_100k_points_is_fast(big: tuple[list[dict[str, Any]], Path], tmp_path: Path) -> None:
    dom = _dump(big[1], tmp_path / "profile")
    draw_ms = float(re.search(r'data-draw-ms="([\d.]+)"', dom).group(1))  # type: ignore[union-attr]
    load_ms = float(re.search(r'data-load-ms="([\d.]+)"', dom).group(1))  # type: ignore[union-attr]
    print(f"first draw of {N_BIG:,} points: {draw_ms:.1f} ms (parse, index and draw: {load_ms:.1f} ms)")
    assert draw_ms < 2000 and load_ms < 4000
    assert _element(dom, "selection-count") == "0" and _selected_ids(dom) == []


@needs_chromium
def test_deep_link_rectangle(big: tuple[list[dict[str, Any]], Path], tmp_path: Path) -> None:
    points, page = big
    dom = _dump(page, tmp_path / "profile", "#select=rect:32.5,-3,7.25,11.75")  # corners in any order
    expression = _element(dom, "expression")
    assert expression == "x >= 7.25 and x <= 32.5 and y >= -3 and y <= 11.75"
    expected = _ids(points, lambda p: _in_rect(p, 7.25, 32.5, -3, 11.75))
    assert len(expected) > 5000 and _selected_ids(dom) == expected
    assert _element(dom, "selection-count") == str(len(expected))
    command = _element(dom, "command")
    dataset = 'pets\' "best"'
    assert command == (
        f"pgsearch query {shlex.quote(expression)} --dataset 'pets'\\'' \"best\"' "
        f"--limit {len(expected)} --add-to-group NAME"
    )
    assert shlex.split(command) == [
        "pgsearch",
        "query",
        expression,
        "--dataset",
        dataset,
        "--limit",
        str(len(expected)),
        "--add-to-group",
        "NAME",
    ]
    params = compile_query(expression, CATALOG).params  # the language takes it, numbers as written
    assert {Decimal("7.25"), Decimal("32.5"), Decimal("11.75"), 3} <= set(params.values())


@needs_chromium
def test_deep_link_numbers_never_use_exponents(
    big: tuple[list[dict[str, Any]], Path], tmp_path: Path
) -> None:
    points, page = big
    dom = _dump(
        page, tmp_path / "profile", "#select=rect:1e-7,-0.1234567890123456789,12.3456789012345678,1e-25"
    )
    expression = _element(dom, "expression")
    assert not re.search(r"\d[eE]", expression)
    bounds = _rect_bounds(expression)
    assert RECT.fullmatch(expression).groups() == ("0.0000001", "12.3456789012346", "-0.123456789012346", "0")  # type: ignore[union-attr]
    assert _selected_ids(dom) == _ids(points, lambda p: _in_rect(p, *bounds))
    compile_query(expression, CATALOG)  # the language takes every number


@needs_chromium
def test_deep_link_lasso(big: tuple[list[dict[str, Any]], Path], tmp_path: Path) -> None:
    points, page = big
    # A concave "C" around the cluster at (20, 10) and through its neighbours.
    polygon: list[list[float]] = [[12, 3], [28, 3], [28, 7], [17, 7], [17, 13], [28, 13], [28, 17], [12, 17]]
    fragment = "#select=lasso:" + ",".join(str(v) for vertex in polygon for v in vertex)
    dom = _dump(page, tmp_path / "profile", fragment)
    expression = _element(dom, "expression")
    assert expression == "inside(x, y, [" + ", ".join(f"[{a}, {b}]" for a, b in polygon) + "])"
    assert _lasso_vertices(expression) == polygon
    expected = _ids(points, lambda p: _inside(p["x"], p["y"], polygon))
    assert len(expected) > 1000 and _selected_ids(dom) == expected
    assert not any(_in_rect(p, 17.5, 27.5, 7.5, 12.5) for p in points if p["id"] in set(expected))  # the hole


@needs_chromium
def test_self_crossing_lasso_winds_like_postgresql(
    big: tuple[list[dict[str, Any]], Path], tmp_path: Path
) -> None:
    """A pentagram in one stroke around the cluster at (20, 10): PostgreSQL's nonzero rule keeps
    its middle, which an even-odd rule would leave out."""
    points, page = big
    star = [
        [
            round(20 + 6 * math.cos(math.radians(90 + 144 * k)), 4),
            round(10 + 6 * math.sin(math.radians(90 + 144 * k)), 4),
        ]
        for k in range(5)
    ]
    dom = _dump(
        page, tmp_path / "profile", "#select=lasso:" + ",".join(str(v) for vertex in star for v in vertex)
    )
    assert _lasso_vertices(_element(dom, "expression")) == star
    expected = _ids(points, lambda p: _inside(p["x"], p["y"], star))
    assert _selected_ids(dom) == expected
    middle = {p["id"] for p in points if math.hypot(p["x"] - 20, p["y"] - 10) < 1}
    assert len(middle) > 500 and middle <= set(expected)
    assert expected != _ids(points, lambda p: _even_odd(p["x"], p["y"], star))


@needs_chromium
def test_deep_link_clusters_and_union(big: tuple[list[dict[str, Any]], Path], tmp_path: Path) -> None:
    points, page = big
    dom = _dump(page, tmp_path / "profile", "#select=cluster:7")
    assert _element(dom, "expression") == "cluster == 7"
    assert _selected_ids(dom) == _ids(points, lambda p: p["cluster"] == 7)
    assert 'class="entry selected"' in dom  # the legend shows it

    dom = _dump(page, tmp_path / "profile", "#select=cluster:12,3;rect:0,0,5,5;cluster:-1")
    expression = _element(dom, "expression")
    assert expression == "(cluster in (-1, 3, 12)) or (x >= 0 and x <= 5 and y >= 0 and y <= 5)"
    expected = _ids(points, lambda p: p["cluster"] in (-1, 3, 12) or _in_rect(p, 0, 5, 0, 5))
    assert _selected_ids(dom) == expected
    compile_query(expression, CATALOG)


@needs_chromium
def test_unclustered_points_in_one_spot(tmp_path: Path) -> None:
    """No clustering (cluster NULL) and zero-size bounds: the page still draws and selects."""
    points = [
        {"id": i, "x": 2.5, "y": -1.0, "cluster": None, "filename": f"{i}.jpg", "path": None}
        for i in (4, 2, 9)
    ]
    page = write_map_page(points, tmp_path / "map.html", dataset="pets")
    dom = _dump(page, tmp_path / "profile", "#select=rect:2,-2,3,0")
    assert (
        _selected_ids(dom) == [2, 4, 9]
        and _element(dom, "expression") == "x >= 2 and x <= 3 and y >= -2 and y <= 0"
    )
    assert 'class="entry inert"' in dom  # "no cluster": listed, but no expression selects it
    empty = write_map_page([], tmp_path / "empty.html", dataset="pets")
    assert _selected_ids(_dump(empty, tmp_path / "profile", "#select=cluster:1")) == []


# ---- the mouse, through synthetic events on a page with a test script appended ----

INTERACTIONS = r"""
<script>
(function () {
  const map = window.pgsearchMap, plot = document.getElementById("plot"), box = plot.getBoundingClientRect();
  const out = {};
  const at = (x, y) => map.toScreen(x, y);
  function fire(type, [sx, sy], extra) {
    const init = { clientX: box.left + sx, clientY: box.top + sy, bubbles: true, cancelable: true,
      pointerId: 1, button: 0, buttons: 1, ...extra };
    plot.dispatchEvent(type === "wheel" ? new WheelEvent(type, init) : new PointerEvent(type, init));
  }
  function drag(path, extra) {
    fire("pointerdown", path[0], extra);
    for (const p of path.slice(1)) fire("pointermove", p, extra);
    fire("pointerup", path[path.length - 1], extra);
  }
  const state = () => ({ expression: map.expression(), ids: map.selection(), command: map.command(),
    count: document.getElementById("selection-count").textContent,
    thumbs: document.querySelectorAll("#thumbs figure").length,
    captions: Array.from(document.querySelectorAll("#thumbs figcaption"), (f) => f.textContent) });

  drag([at(8, 8), at(15, 12), at(22, 19)]);
  out.rect = state();
  drag([at(-3, 25), at(4, 35)], { shiftKey: true });
  out.union = state();
  const circle = [];
  for (let k = 0; k <= 400; k++) circle.push(at(30 + 7 * Math.cos(k * Math.PI / 200), 20 + 5 * Math.sin(k * Math.PI / 200)));
  document.querySelector('[data-tool="lasso"]').click();
  drag(circle);
  out.lasso = state();
  window.dispatchEvent(new KeyboardEvent("keydown", { key: "c" }));
  const target = at(map.target[0], map.target[1]);
  drag([target]);
  out.clusterTool = state();
  document.querySelectorAll("#legend .entry")[4].dispatchEvent(new MouseEvent("click", { bubbles: true, shiftKey: true }));
  out.legendShift = state();
  fire("pointermove", target, { buttons: 0 });
  out.tooltip = document.getElementById("tooltip").textContent;
  out.tooltipDisplay = document.getElementById("tooltip").style.display;
  const before = map.toData(200, 150);
  fire("wheel", [200, 150], { deltaY: -300 });
  out.zoomFixed = map.toData(200, 150).map((v, i) => v - before[i]);
  out.zoomed = map.toScreen(1, 0)[0] - map.toScreen(0, 0)[0];
  const grabbed = map.toData(300, 300);
  fire("pointerdown", [300, 300], { button: 1, buttons: 4 });
  fire("pointermove", [340, 280], { button: 1, buttons: 4 });
  fire("pointerup", [340, 280], { button: 1, buttons: 0 });
  out.panned = map.toData(340, 280).map((v, i) => v - grabbed[i]);  // the grabbed spot followed
  out.panKeptSelection = map.selection().length;
  window.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape" }));
  out.cleared = state();
  const pre = document.createElement("pre");
  pre.id = "test-results";
  pre.textContent = JSON.stringify(out);
  document.body.append(pre);
})();
</script>
"""


@needs_chromium
def test_mouse_selections_match_their_expressions(tmp_path: Path) -> None:
    points = _points(4000, seed=11)
    ordered = sorted(points, key=lambda p: p["id"])
    target = next(
        p for p in ordered if p["cluster"] == 7 and abs(p["x"] - 20) < 0.5 and abs(p["y"] - 10) < 0.5
    )
    Image.new("RGB", (64, 64), (0, 128, 0)).save(tmp_path / "green.png")
    target["path"] = str(tmp_path / "green.png")
    target["filename"] = HOSTILE
    page = map_page_html(points, dataset="pets")
    script = INTERACTIONS.replace("map.target", json.dumps([target["x"], target["y"]]))
    head, _, tail = page.rpartition("</body>")
    (tmp_path / "map.html").write_text(head + script + "</body>" + tail, encoding="utf-8")
    dom = _dump(tmp_path / "map.html", tmp_path / "profile")
    out = json.loads(_element(dom, "test-results"))

    # A rectangle dragged from (8, 8) to (22, 19): the bounds are the view's, at sub-pixel digits,
    # and the items are exactly those the expression selects.
    bounds = _rect_bounds(out["rect"]["expression"])
    assert np.allclose(bounds, [8, 22, 8, 19], atol=0.05)
    assert all(len(t.partition(".")[2]) <= 4 for t in RECT.fullmatch(out["rect"]["expression"]).groups())  # type: ignore[union-attr]
    assert (
        out["rect"]["ids"] == _ids(points, lambda p: _in_rect(p, *bounds)) and len(out["rect"]["ids"]) > 300
    )
    assert out["rect"]["thumbs"] == 200 and out["rect"]["count"] == str(len(out["rect"]["ids"]))
    assert out["rect"]["captions"][:3] == [f"img_{i:06d}.jpg" for i in out["rect"]["ids"][:3]]

    # Shift adds a second rectangle: the parts joined with `or`.
    first, second = re.fullmatch(r"\((.*)\) or \((.*)\)", out["union"]["expression"]).groups()  # type: ignore[union-attr]
    assert first == out["rect"]["expression"]
    b2 = _rect_bounds(second)
    assert out["union"]["ids"] == _ids(points, lambda p: _in_rect(p, *bounds) or _in_rect(p, *b2))

    # A freehand ellipse of 400 steps becomes a polygon of at most 100 vertices.
    vertices = _lasso_vertices(out["lasso"]["expression"])
    assert 8 <= len(vertices) <= 100
    assert out["lasso"]["ids"] == _ids(points, lambda p: _inside(p["x"], p["y"], vertices))
    assert len(out["lasso"]["ids"]) > 100

    # The cluster tool: a click on a point selects its cluster; shift-click in the legend adds one.
    assert out["clusterTool"]["expression"] == "cluster == 7"
    assert out["clusterTool"]["ids"] == _ids(points, lambda p: p["cluster"] == 7)
    assert out["legendShift"]["expression"] == "cluster in (4, 7)"
    assert out["legendShift"]["ids"] == _ids(points, lambda p: p["cluster"] in (4, 7))

    # Hover: the tooltip shows the file name as text.
    assert out["tooltipDisplay"] == "block" and HOSTILE in out["tooltip"] and "cluster 7" in out["tooltip"]
    assert "<img src=x" not in dom

    # Wheel zooms around the cursor; a middle-button drag pans and keeps the selection.
    assert max(abs(v) for v in out["zoomFixed"]) < 1e-9 and out["zoomed"] > 0
    assert max(abs(v) for v in out["panned"]) < 1e-9 and out["panKeptSelection"] == len(
        out["legendShift"]["ids"]
    )
    assert (
        out["cleared"]["expression"] == "" and out["cleared"]["ids"] == [] and out["cleared"]["command"] == ""
    )
