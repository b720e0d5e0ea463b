"""The map page and the query language agree: a selection drawn on the page of a real dataset
(the demo, mapped by `pgsearch demo`) yields an expression that selects, through `pgsearch query`,
exactly the assets the page lists; the page shows coloured points; the printed command adds them
to a group."""

from __future__ import annotations

import html
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from PIL import Image

from pgsearch.cli import cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install -y chromium)"
)


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def _element(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert match, element_id
    return html.unescape(match.group(1))


@pytest.fixture
def demo(dsn: str, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    result = CliRunner().invoke(cli, ["demo", "--images", "60", "--dir", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "7. mapped the dataset" in result.output
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT asset_id, x, y, cluster FROM pgsearch.v_assets WHERE dataset = 'demo' ORDER BY asset_id"
        ).fetchall()
    points = [{"id": r[0], "x": r[1], "y": r[2], "cluster": r[3]} for r in rows]
    assert all(p["x"] is not None for p in points)
    return tmp_path / "map.html", points


def _query_ids(expression: str, *extra: str) -> list[int]:
    result = CliRunner().invoke(
        cli, ["query", expression, "--dataset", "demo", "--format", "json", "-n", "1000", *extra]
    )
    assert result.exit_code == 0, result.output
    return sorted(row["id"] for row in json.loads(result.output[result.output.index("[") :]))


def test_the_page_shows_coloured_points(demo: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    page, _ = demo
    shot = tmp_path / "map.png"
    done = _chromium(
        "--window-size=1200,800", "--virtual-time-budget=5000", f"--screenshot={shot}", page.as_uri(),
        profile=tmp_path / "profile",
    )  # fmt: skip
    assert shot.exists(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    saturated = {
        (r // 32, g // 32, b // 32)
        for r, g, b in image.get_flattened_data()
        if max(r, g, b) - min(r, g, b) > 80  # coloured, not grey/black/white text
    }
    assert len(saturated) >= 3, "the map shows no coloured points"


@pytest.mark.parametrize("kind", ["rect", "lasso", "cluster"])
def test_a_selection_on_the_page_is_the_query_it_prints(
    demo: tuple[Path, list[dict[str, Any]]], tmp_path: Path, kind: str
) -> None:
    page, points = demo
    xs = sorted(p["x"] for p in points)
    ys = sorted(p["y"] for p in points)
    lo_x, hi_x = xs[len(xs) // 5], xs[4 * len(xs) // 5]
    lo_y, hi_y = ys[len(ys) // 5], ys[4 * len(ys) // 5]
    if kind == "rect":
        fragment = f"#select=rect:{lo_x},{lo_y},{hi_x},{hi_y}"
    elif kind == "lasso":
        # A concave outline (a box with a notch cut into its top) around one cluster's points.
        own = [p for p in points if p["cluster"] == points[0]["cluster"]]
        x0, x1 = min(p["x"] for p in own) - 0.5, max(p["x"] for p in own) + 0.5
        y0, y1 = min(p["y"] for p in own) - 0.5, max(p["y"] for p in own) + 0.5
        notch = ((x0 + x1) / 2, y1 - (y1 - y0) / 4)
        fragment = f"#select=lasso:{x0},{y0},{x1},{y0},{x1},{y1},{notch[0]},{notch[1]},{x0},{y1}"
    else:
        fragment = f"#select=cluster:{points[0]['cluster']}"
    done = _chromium(
        "--virtual-time-budget=5000", "--dump-dom", page.as_uri() + fragment, profile=tmp_path / "p"
    )
    dom = done.stdout
    assert 'data-ready="true"' in dom, done.stderr[-2000:]
    expression = _element(dom, "expression")
    listed = sorted(int(v) for v in _element(dom, "selection-ids").split(",") if v)
    assert listed, f"the {kind} selection is empty: {expression}"
    assert {"rect": "x >= ", "lasso": "inside(x, y, ", "cluster": "cluster "}[kind] in expression
    assert _query_ids(expression) == listed
    # The command the page prints adds exactly those assets to the group.
    command = _element(dom, "command").replace("NAME", "picked")
    args = shlex.split(command)
    assert args[:2] == ["pgsearch", "query"]
    result = CliRunner().invoke(cli, args[1:])
    assert result.exit_code == 0, result.output
    assert _query_ids('"picked" in groups') == listed
