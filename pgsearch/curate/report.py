"""The report of a `pgsearch curate` run (--report FILE): one self-contained HTML page (nothing
fetched from anywhere) comparing the curated subset with a random subset of the same size drawn
from the same candidates (subset.random_subset, seeded by --seed).

    counts and parameters   candidates, chosen, junk left out, duplicates skipped, clusters, time
    clusters covered        curated vs random: how many clusters hold at least one pick (chart)
    items per cluster       clusters sorted by size, largest first: picks of both subsets (chart)
    class balance           where the assets have labels: the share of each label in the curated
                            subset, the random one and all candidates (chart and table)
    thumbnails              picks from the sparsest (smallest) and the densest (largest) clusters

Charts are PNGs drawn by matplotlib's Agg canvas (no pyplot, so no global backend is changed)
and embedded as base64; thumbnails come from pgsearch.gallery. Every text from the data (file
names, labels, group and dataset names, the query) is escaped. The numbers shown are also in a
`<script type="application/json" id="curate-data">` block, for scripts and tests.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from pgsearch.curate.subset import CurateResult, Selection

THUMBNAILS = 12
THUMB_PX = 128
MAX_LABELS = 30
BAR_CLUSTERS = 80  # up to this many clusters as bars, else as steps
CURATED_COLOUR = "#2563eb"
RANDOM_COLOUR = "#f97316"
ALL_COLOUR = "#9ca3af"


# -- the numbers -----------------------------------------------------------------------------------


def _labels_of(conn: Any, ids: np.ndarray) -> dict[int, list[str]]:
    if not len(ids):
        return {}
    rows = conn.execute(
        "SELECT id, label_counts FROM pgsearch.assets WHERE id = ANY(%s)", (ids.tolist(),)
    ).fetchall()
    return {int(r[0]): sorted((r[1] or {}).keys()) for r in rows}


def _label_totals(conn: Any, ids: np.ndarray) -> Counter[str]:
    """Per label, how many of the assets `ids` carry it (at least one shape of it)."""
    rows = conn.execute(
        "SELECT k, count(*) FROM pgsearch.assets AS a JOIN unnest(%s::bigint[]) AS u(id) ON u.id = a.id,"
        " jsonb_object_keys(coalesce(a.label_counts, '{}'::jsonb)) AS k GROUP BY k",
        (ids.tolist(),),
    ).fetchall()
    return Counter({str(r[0]): int(r[1]) for r in rows})


def _count(labels: dict[int, list[str]], ids: np.ndarray) -> Counter[str]:
    out: Counter[str] = Counter()
    for item in ids.tolist():
        out.update(labels.get(int(item), []))
    return out


def _thumbnail_ids(selection: Selection, sparsest: bool) -> list[tuple[int, int]]:
    """(cluster, item id) of up to THUMBNAILS picks from the smallest (or largest) clusters,
    taken round-robin over the clusters in that order so that several clusters show."""
    c = selection.clustering
    at = np.searchsorted(selection.candidates, selection.picked)
    labels = c.labels[at]
    by_cluster: dict[int, list[int]] = {}
    for item, label in zip(selection.picked.tolist(), labels.tolist(), strict=True):
        if label >= 0:
            by_cluster.setdefault(int(label), []).append(int(item))
    if sparsest:  # one pick from each of the smallest clusters
        chosen = sorted(by_cluster, key=lambda k: (int(c.sizes[k]), k))[:THUMBNAILS]
    else:  # a few picks from each of the largest clusters
        chosen = sorted(by_cluster, key=lambda k: (-int(c.sizes[k]), k))[: max(1, THUMBNAILS // 3)]
    out: list[tuple[int, int]] = []
    depth = 0
    while len(out) < THUMBNAILS and any(depth < len(by_cluster[k]) for k in chosen):
        for k in chosen:
            if depth < len(by_cluster[k]) and len(out) < THUMBNAILS:
                out.append((k, by_cluster[k][depth]))
        depth += 1
    return out


def report_data(conn: Any, result: CurateResult) -> dict[str, Any]:
    """Every number the page shows, as plain JSON-able values."""
    s = result.selection
    c = s.clustering
    curated = s.picked_per_cluster(s.picked)
    rnd = s.picked_per_cluster(s.random)
    k = len(c.sizes)
    order = np.lexsort((np.arange(k), -c.sizes))  # largest first
    shown = np.unique(np.concatenate([s.picked, s.random]))
    labels = _labels_of(conn, shown)
    totals = _label_totals(conn, s.candidates)
    conn.commit()
    cur_labels, rnd_labels = _count(labels, s.picked), _count(labels, s.random)
    names = sorted(totals, key=lambda name: (-totals[name], name))
    summary = result.summary()
    return {
        "summary": summary,
        "params": result.params,
        "timings": s.stats.get("timings", {}),
        "eligible": int(s.stats.get("eligible", 0)),
        "pair_median_distance": s.stats.get("pair_median_distance"),
        "clusters": {
            "names": [c.names[i] for i in order.tolist()],
            "sizes": c.sizes[order].astype(int).tolist(),
            "curated": curated[order].astype(int).tolist(),
            "random": rnd[order].astype(int).tolist(),
            "quota": s.quotas[order].astype(int).tolist(),
            "isolated": c.isolated[order].astype(bool).tolist(),
        },
        "labels": {
            "names": names,
            "all": [totals[name] for name in names],
            "curated": [cur_labels.get(name, 0) for name in names],
            "random": [rnd_labels.get(name, 0) for name in names],
            "unlabelled": {
                "curated": sum(1 for i in s.picked.tolist() if not labels.get(int(i))),
                "random": sum(1 for i in s.random.tolist() if not labels.get(int(i))),
            },
        },
        "thumbnails": {
            "sparsest": [[int(a), int(b)] for a, b in _thumbnail_ids(s, True)],
            "densest": [[int(a), int(b)] for a, b in _thumbnail_ids(s, False)],
        },
    }


# -- charts ----------------------------------------------------------------------------------------

MISSING_MATPLOTLIB = "--report needs matplotlib: python3 -m pip install 'pgsearch[curate]'"


def check_dependencies() -> None:
    """CurationError when the report could not be drawn (matplotlib missing): `pgsearch curate`
    calls it before it changes anything."""
    from pgsearch.curate.spaces import CurationError

    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise CurationError(MISSING_MATPLOTLIB) from None


def _plain(text: str, limit: int = 24) -> str:
    """A label as matplotlib shows it literally: `$` would start mathtext."""
    text = text if len(text) <= limit else text[: limit - 1] + "\u2026"
    return text.replace("\\", "\\\\").replace("$", r"\$")


def _png(figure: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def coverage_chart(data: dict[str, Any]) -> str:
    summary = data["summary"]
    k = summary["clusters"]
    fig = _figure(7, 2.2)
    ax = fig.add_subplot()
    values = [summary["covered"], summary["random_covered"]]
    bars = ax.barh(["curated", "random"], values, color=[CURATED_COLOUR, RANDOM_COLOUR])
    ax.axvline(k, color="#111827", linewidth=1, linestyle="--")
    ax.set_xlim(0, max(k, 1) * 1.12)
    ax.invert_yaxis()
    for bar, value in zip(bars, values, strict=True):
        pct = 100.0 * value / k if k else 0.0
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:,} ({pct:.1f}%)", va="center")
    ax.set_xlabel(f"clusters with at least one pick (of {k:,})")
    ax.set_title("Clusters covered")
    return _png(fig)


def per_cluster_chart(data: dict[str, Any]) -> str:
    clusters = data["clusters"]
    k = len(clusters["sizes"])
    fig = _figure(9, 3.4)
    ax = fig.add_subplot()
    x = np.arange(k)
    if k <= BAR_CLUSTERS:
        ax.bar(x - 0.2, clusters["curated"], width=0.4, color=CURATED_COLOUR, label="curated")
        ax.bar(x + 0.2, clusters["random"], width=0.4, color=RANDOM_COLOUR, label="random")
    else:
        ax.step(x, clusters["random"], where="mid", color=RANDOM_COLOUR, label="random", linewidth=1)
        ax.step(x, clusters["curated"], where="mid", color=CURATED_COLOUR, label="curated", linewidth=1)
    ax.set_xlabel("clusters, largest (densest) first \u2192 smallest (sparsest)")
    ax.set_ylabel("items picked")
    sizes_axis = ax.twinx()
    sizes_axis.plot(x, clusters["sizes"], color=ALL_COLOUR, linewidth=1, label="cluster size")
    sizes_axis.set_ylabel("cluster size", color="#6b7280")
    if k and max(clusters["sizes"]) > 20 * max(1, min(clusters["sizes"])):
        sizes_axis.set_yscale("log")
    handles = ax.get_legend_handles_labels()
    extra = sizes_axis.get_legend_handles_labels()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper center", ncols=3, fontsize=8)
    ax.set_title("Items per cluster")
    return _png(fig)


def class_chart(data: dict[str, Any]) -> str | None:
    labels = data["labels"]
    if not labels["names"]:
        return None
    names = labels["names"][:MAX_LABELS]
    n_cur = max(1, data["summary"]["chosen"])
    n_all = max(1, data["summary"]["candidates"])
    share = {
        "curated": [100.0 * v / n_cur for v in labels["curated"][: len(names)]],
        "random": [100.0 * v / n_cur for v in labels["random"][: len(names)]],
        "all candidates": [100.0 * v / n_all for v in labels["all"][: len(names)]],
    }
    fig = _figure(max(6.0, min(14.0, 0.45 * len(names) + 3)), 3.4)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    for offset, (name, colour) in zip(
        (-0.27, 0.0, 0.27),
        (("curated", CURATED_COLOUR), ("random", RANDOM_COLOUR), ("all candidates", ALL_COLOUR)),
        strict=True,
    ):
        ax.bar(x + offset, share[name], width=0.27, color=colour, label=name)
    ax.set_xticks(
        x,
        [_plain(n) for n in names],
        rotation=45 if len(names) > 8 else 0,
        ha="right" if len(names) > 8 else "center",
    )
    ax.set_ylabel("% of the subset (all: of the candidates)")
    ax.legend(fontsize=8)
    title = "Class balance" + (
        f" (the {MAX_LABELS} most frequent labels)" if len(labels["names"]) > MAX_LABELS else ""
    )
    ax.set_title(title)
    return _png(fig)


# -- the page --------------------------------------------------------------------------------------

_STYLE = """
body { font: 14px system-ui, sans-serif; margin: 20px; background: #f4f4f5; color: #18181b; }
h1 { font-size: 20px; margin: 0 0 6px; } h2 { font-size: 16px; margin: 24px 0 6px; }
p.lead { color: #3f3f46; margin: 0 0 12px; }
table { border-collapse: collapse; background: #fff; margin: 6px 0 12px; }
th, td { border: 1px solid #e4e4e7; padding: 3px 8px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
img.chart { display: block; max-width: 100%; background: #fff; border: 1px solid #e4e4e7; margin: 6px 0; }
.cols { display: flex; flex-wrap: wrap; gap: 24px; }
"""


def _row(label: str, value: Any, key: str | None = None) -> str:
    e = html.escape
    attr = f' data-key="{e(key)}"' if key else ""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
    cls = ' class="n"' if numeric else ""
    return f"<tr><th>{e(label)}</th><td{attr}{cls}>{e(shown)}</td></tr>"


def _chart(png: str | None, alt: str) -> str:
    if png is None:
        return ""
    return f'<img class="chart" alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'


def _thumbs(conn: Any, data: dict[str, Any], which: str, names: dict[int, str], sizes: dict[int, int]) -> str:
    from psycopg.rows import dict_row

    from pgsearch.gallery import Thumbnails
    from pgsearch.gallery import figure_html as gallery_figure

    pairs = data["thumbnails"][which]
    if not pairs:
        return "<p>none</p>"
    ids = [item for _, item in pairs]
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, filename, path, width, height, label_counts FROM pgsearch.assets WHERE id = ANY(%s)",
            (ids,),
        )
        rows = {int(r["id"]): r for r in cur.fetchall()}
    conn.commit()
    thumbs = Thumbnails(None, THUMB_PX)
    figures = []
    for cluster, item in pairs:
        row = dict(rows.get(item, {"id": item, "filename": str(item), "path": None}))
        figures.append(
            f'<div class="thumb"><div class="cluster">{html.escape(names[cluster])} '
            f"({sizes[cluster]:,} items)</div>{gallery_figure(row, thumbs)}</div>"
        )
    return '<main class="grid">' + "".join(figures) + "</main>"


def report_html(conn: Any, result: CurateResult, data: dict[str, Any] | None = None) -> str:
    """The report page (see the module docstring)."""
    from pgsearch.gallery import STYLE as GALLERY_STYLE

    data = report_data(conn, result) if data is None else data
    e = html.escape
    s = data["summary"]
    p = data["params"]
    title = f"Curated subset {s['group']} of {s['dataset']}"
    k = s["clusters"]
    counts = "".join(
        [
            _row("candidates", s["candidates"], "candidates"),
            _row("chosen (curated subset)", s["chosen"], "chosen"),
            _row("random subset (same size, same candidates)", s["chosen"], "random_size"),
            _row(
                "eligible (candidates not left out as junk)",
                data["eligible"],
                "eligible",
            ),
            _row("isolated items (junk)", s["junk"], "junk"),
            _row("junk left out", s["junk_excluded"], "junk_excluded"),
            _row("junk in the random subset", s["junk_in_random"], "junk_in_random"),
            _row("near-duplicates skipped", s["duplicates_skipped"], "duplicates_skipped"),
            _row("clusters", k, "clusters"),
            _row("clusters covered, curated", s["covered"], "covered"),
            _row("clusters covered, curated (%)", f"{s['covered_pct']:.1f}", "covered_pct"),
            _row("clusters covered, random", s["random_covered"], "random_covered"),
            _row("clusters covered, random (%)", f"{s['random_covered_pct']:.1f}", "random_covered_pct"),
            _row("assets added to the group", s["added_to_group"], "added"),
            _row("seconds", f"{s['seconds']:.2f}", "seconds"),
        ]
    )
    params = "".join(
        [
            _row("dataset", s["dataset"]),
            _row("model", s["model"]),
            _row("group", s["group"]),
            _row("--where", p["where"] if p["where"] is not None else "(all assets)"),
            _row("--size", p["size"]),
            _row("--seed", p["seed"]),
            _row("--include-outliers", "yes" if p["include_outliers"] else "no"),
            _row("--replace", "yes" if p["replace"] else "no"),
            _row("clustering", p["clustering"]),
            _row("near-duplicates", p["duplicates"]),
            _row("junk threshold (isolation, cosine distance)", f"{p['junk_threshold']:.4f}"),
            _row("selection graph", p["selection_graph"]),
            _row("cluster quotas", f"1 each, the rest in proportion to size^{p['quota_power']:g}"),
            _row("run id (pgsearch.curation_runs)", s["run_id"]),
        ]
    )
    timings = "".join(_row(key, f"{value:.3f}") for key, value in data["timings"].items())
    labels = data["labels"]
    class_rows = "".join(
        f'<tr><td>{e(name)}</td><td class="n" data-label-all="{e(name)}">{a:,}</td>'
        f'<td class="n" data-label-curated="{e(name)}">{cu:,}</td>'
        f'<td class="n" data-label-random="{e(name)}">{r:,}</td></tr>'
        for name, a, cu, r in zip(
            labels["names"], labels["all"], labels["curated"], labels["random"], strict=True
        )
    )
    clusters = data["clusters"]
    names = {}
    sizes = {}
    for pair in data["thumbnails"]["sparsest"] + data["thumbnails"]["densest"]:
        cluster = pair[0]
        names[cluster] = result.selection.clustering.names[cluster]
        sizes[cluster] = int(result.selection.clustering.sizes[cluster])
    blob = (
        json.dumps(data, ensure_ascii=True, default=str)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    class_section = (
        f"<h2>Class balance</h2>{_chart(class_chart(data), 'class balance chart')}"
        "<table><tr><th>label</th><th>all candidates</th><th>curated</th><th>random</th></tr>"
        f"{class_rows}</table>"
        f"<p>assets without a label: curated {labels['unlabelled']['curated']:,}, random "
        f"{labels['unlabelled']['random']:,}</p>"
        if labels["names"]
        else "<h2>Class balance</h2><p>The candidates carry no labels.</p>"
    )
    smallest = min(clusters["sizes"]) if clusters["sizes"] else 0
    largest = max(clusters["sizes"]) if clusters["sizes"] else 0
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{e(title)}</title>",
            f"<style>:root {{ --thumb: {THUMB_PX}px; }}{GALLERY_STYLE}{_STYLE}"
            ".thumb .cluster { font-size: 12px; color: #52525b; margin-bottom: 2px; }</style>",
            "</head><body>",
            f"<h1>{e(title)}</h1>",
            f'<p class="lead">{s["chosen"]:,} of {s["candidates"]:,} candidates picked, balanced over '
            f"{k:,} clusters (sparse clusters first), against a random subset of the same size from the "
            f"same candidates (seed {int(p['seed'])}): clusters covered {s['covered']:,} "
            f"({s['covered_pct']:.1f}%) against {s['random_covered']:,} ({s['random_covered_pct']:.1f}%).</p>",
            '<div class="cols">',
            f"<div><h2>Counts</h2><table>{counts}</table></div>",
            f"<div><h2>Parameters</h2><table>{params}</table>",
            f"<h2>Time (seconds)</h2><table>{timings}</table></div>",
            "</div>",
            "<h2>Clusters covered</h2>",
            _chart(coverage_chart(data), "clusters covered chart"),
            "<h2>Items per cluster</h2>",
            f"<p>{k:,} clusters, from {largest:,} items down to {smallest:,}; every cluster gets a pick "
            "before the large ones get more.</p>",
            _chart(per_cluster_chart(data), "items per cluster chart"),
            class_section,
            "<h2>Picks from the sparsest clusters</h2>",
            _thumbs(conn, data, "sparsest", names, sizes),
            "<h2>Picks from the densest clusters</h2>",
            _thumbs(conn, data, "densest", names, sizes),
            f'<script type="application/json" id="curate-data">{blob}</script>',
            "</body></html>",
            "",
        ]
    )


def write_report(conn: Any, result: CurateResult, path: str | Path) -> Path:
    target = Path(path)
    target.write_text(report_html(conn, result), encoding="utf-8")
    return target
