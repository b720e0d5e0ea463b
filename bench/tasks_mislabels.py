"""bench/tasks_mislabels: the benchmarks behind `pgsearch mislabels` (pgsearch/curate/mislabels.py),
as functions bench/curate.py calls; also runnable on their own.

    python bench/tasks_mislabels.py digits [--home DIR | --dsn URL] [--seeds 0 1 2] [--flips 0.1 0.05 0.2]
    python bench/tasks_mislabels.py synthetic [--home DIR | --dsn URL] [--n 100000]

digits (run_digits): bench/digits.py's folders (1,797 scikit-learn digits with a share of their
labels flipped at random, 20 near-duplicates, 20 noise images), loaded as the README says
(`pgsearch load DIR --dataset D --format folders --model pixels`), scored by each variant below on
the same neighbour graph, and by the command itself (`pgsearch mislabels -f json -n 0`), against
truth.json's `flipped` flags. The 20 noise images have no true label: they are left out of the
scores (flagging one is neither right nor wrong) and their flags are counted apart (`noise`).
Near-duplicates count as any other item (their label is right). precision@K: of the K most
suspicious items (K = the flipped labels), the share that were flipped.

Variants (each at its own fixed threshold; none tuned per dataset):

- knn10: plain 10-NN disagreement, score = share of the 10 nearest neighbours with another label,
  flagged at >= 0.5 (the majority disagrees);
- knn10-argmax: the same score, flagged when the neighbours' most common label is not the item's;
- knn10@0.8: the same flagged at >= 0.8;
- weighted30: distance-weighted 30-NN vote (1 / (d + 0.01)), flagged at >= 0.8;
- cl10 / cl30s: confident learning (Northcutt et al. 2021) with out-of-sample probabilities from the
  10-NN vote (cl10) or from the chosen scaled vote (cl30s): per-class threshold t_c = the mean
  probability of class c over the items labelled c; an item is flagged when the most likely class
  among those reaching their threshold is not its label (the off-diagonal of the confident joint);
  ranked by self-confidence (1 - p(label));
- iterated: the chosen vote, twice: items scored >= 0.5 the first time vote with their suggested
  label the second time;
- second-order: the chosen vote, plus the neighbours' neighbours at the product of the weights;
- scaled15 / scaled50: the chosen method on 15 / 50 neighbours;
- scaled30 (chosen, the product): w = exp(-(d / s_j)^2), s_j = neighbour j's distance to its 10th
  neighbour, own-label prior 0.25, flagged at >= 0.8.

synthetic (run_synthetic): bench/synthetic.py's clustered 512-d vectors straight into Postgres,
given labels here (the nearest of 100 random items, i.e. Voronoi cells of the data, 10% flipped at
random, one 'tag' shape per asset), the 30-neighbour graph built beforehand, then the whole command
timed in a fresh process (wall time and peak memory), first recomputing, then reusing; plus the
stages in this process (labels, graph read, scoring, storing) and precision / recall on the flips.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from pgsearch.curate import mislabels as ml  # noqa: E402

CHOSEN = "scaled30"


# -- scoring helpers -------------------------------------------------------------------------------


def dense_vote(positions: np.ndarray, weights: np.ndarray, codes: np.ndarray, labels: int) -> np.ndarray:
    """(n, labels) normalised vote of each row's neighbours (small data only: the benchmark's)."""
    n, k = positions.shape
    votes = np.where(positions >= 0, codes[np.maximum(positions, 0)], -1)
    ok = votes >= 0
    p = np.zeros((n, labels))
    np.add.at(
        p, (np.repeat(np.arange(n), k)[ok.ravel()], votes.ravel()[ok.ravel()]), weights.ravel()[ok.ravel()]
    )
    return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)


def confident_learning(p: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flags, ranking score) of confident learning on out-of-sample probabilities p."""
    n, labels = p.shape
    own = p[np.arange(n), codes]
    t = np.array([own[codes == c].mean() if (codes == c).any() else 1.0 for c in range(labels)])
    above = p >= t[None, :]
    best = np.where(above, p, -1.0).argmax(axis=1)
    flags = above.any(axis=1) & (best != codes)
    return flags, 1.0 - own


def variants(
    positions: np.ndarray, distances: np.ndarray, codes: np.ndarray, labels: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (score, flags) for every variant, on a graph of >= 50 neighbours (positions into
    the rows, distances) and the rows' label codes (all >= 0)."""
    n = len(codes)
    ids = np.arange(n, dtype=np.int64)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def product(k: int, **kw: Any) -> np.ndarray:
        return ml.score_graph(ids, positions, distances, codes, k=k, **kw).score.astype(np.float64)

    uniform10 = dense_vote(positions[:, :10], np.ones((n, 10)), codes, labels)
    knn10 = 1.0 - uniform10[np.arange(n), codes]
    out["knn10"] = (knn10, knn10 >= 0.5)
    out["knn10-argmax"] = (knn10, uniform10.argmax(axis=1) != codes)
    out["knn10@0.8"] = (knn10, knn10 >= 0.8)
    weighted = product(30, kernel="inverse", prior=0.0)
    out["weighted30"] = (weighted, weighted >= 0.8)
    flags, rank = confident_learning(uniform10, codes)
    out["cl10"] = (rank, flags)
    scale = np.maximum(distances[:, ml.SCALE_RANK - 1], ml.MIN_SCALE)
    w30 = ml.neighbour_weights(positions[:, :30], distances[:, :30], scale)
    scaled_p = dense_vote(positions[:, :30], w30, codes, labels)
    flags, rank = confident_learning(scaled_p, codes)
    out["cl30s"] = (rank, flags)
    first = ml.score_graph(ids, positions, distances, codes, k=30)
    relabelled = np.where((first.score >= 0.5) & (first.suggested >= 0), first.suggested, codes).astype(
        np.int32
    )
    again = ml.score_graph(ids, positions, distances, codes, k=30, vote_codes=relabelled).score.astype(
        np.float64
    )
    out["iterated"] = (again, again >= ml.DEFAULT_THRESHOLD)
    out["second-order"] = _second_order(positions[:, :30], w30, codes, labels)
    for k in (15, 50):
        s = product(k)
        out[f"scaled{k}"] = (s, s >= ml.DEFAULT_THRESHOLD)
    s = product(30)
    out[CHOSEN] = (s, s >= ml.DEFAULT_THRESHOLD)
    return out


def _second_order(
    positions: np.ndarray, weights: np.ndarray, codes: np.ndarray, labels: int
) -> tuple[np.ndarray, np.ndarray]:
    from scipy import sparse

    n, k = positions.shape
    ok = positions >= 0
    w = sparse.csr_matrix(
        (weights[ok], (np.repeat(np.arange(n), k)[ok.ravel()], positions[ok])), shape=(n, n)
    )
    two = w + 0.5 * (w @ w)
    two.setdiag(0)
    onehot = sparse.csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, labels))
    votes = np.asarray((two @ onehot).todense())
    own = votes[np.arange(n), codes]
    score = 1.0 - (own + ml.PRIOR) / (votes.sum(axis=1) + ml.PRIOR)
    return score, score >= ml.DEFAULT_THRESHOLD


def measure(score: np.ndarray, flags: np.ndarray, flipped: np.ndarray, noise: np.ndarray) -> dict[str, Any]:
    """precision, recall, precision@K on the items with a true label; noise flags counted apart."""
    keep = ~noise
    f, t, s = flags[keep], flipped[keep], score[keep]
    tp, fp = int((f & t).sum()), int((f & ~t).sum())
    k = int(t.sum())
    top = np.lexsort((np.arange(len(s)), -s))[:k]
    return {
        "precision": round(tp / max(1, tp + fp), 3),
        "recall": round(tp / max(1, k), 3),
        "precision_at_k": round(float(t[top].mean()) if k else 1.0, 3),
        "flagged": int(f.sum()),
        "flipped": k,
        "noise": int(flags[noise].sum()),
    }


# -- the digits task -------------------------------------------------------------------------------


def _dsn(home: Path | None, dsn: str | None) -> str:
    from synthetic import server_dsn  # bench/synthetic.py

    return server_dsn(home, dsn)


def _cli(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGSEARCH_DSN": dsn}
    return subprocess.run(
        [sys.executable, "-m", "pgsearch", *args], env=env, capture_output=True, text=True, check=True
    )


def run_digits(
    *,
    home: Path | None = None,
    dsn: str | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
    flips: tuple[float, ...] = (0.1, 0.05, 0.2),
    workdir: Path | None = None,
) -> list[dict[str, Any]]:
    """One row per (dataset, variant): seed 0 at every flip rate, and every seed at 10%."""
    from digits import write_digits  # bench/digits.py

    from pgsearch import db as database
    from pgsearch.curate.graph import ensure_graph
    from pgsearch.curate.spaces import resolve_space
    from pgsearch.datasets import get_dataset

    dsn = _dsn(home, dsn)
    workdir = workdir or Path(tempfile.mkdtemp(prefix="pgsearch-digits-"))
    cases = [(s, 0.1) for s in seeds] + [(seeds[0], f) for f in flips if f != 0.1]
    out: list[dict[str, Any]] = []
    for seed, flip in cases:
        name = f"digits_s{seed}_f{int(round(flip * 100)):02d}"
        folder = workdir / name
        truth = write_digits(folder, flip=flip, seed=seed)["files"]
        _cli(
            dsn, "load", str(folder), "--dataset", name, "--format", "folders", "--model", "pixels", "--quiet"
        )
        started = time.monotonic()
        command = _cli(dsn, "mislabels", "--dataset", name, "-f", "json", "-n", "0", "--recompute", "-q")
        command_s = time.monotonic() - started
        found = {row["filename"] for row in json.loads(command.stdout)}
        with database.connect(dsn) as conn:
            ds = get_dataset(conn, name)
            space = resolve_space(conn, name, "asset", "pixels")
            graph = ensure_graph(conn, space, 50)
            labels = ml.fetch_labels(conn, ds.id, "asset")
            files = dict(
                conn.execute("SELECT id, filename FROM pgsearch.assets WHERE dataset_id = %s", (ds.id,))
            )
            conn.commit()
        codes = labels.codes_for(graph.ids)
        filenames = [files[int(i)] for i in graph.ids]
        flipped = np.array([bool(truth[f]["flipped"]) for f in filenames])
        noise = np.array([bool(truth[f].get("noise")) for f in filenames])
        for variant, (score, flags) in variants(
            graph.positions(), graph.distances, codes, len(labels.names)
        ).items():
            out.append({"dataset": name, "seed": seed, "flip": flip, "variant": variant,
                        **measure(score, flags, flipped, noise)})  # fmt: skip
        flags = np.array([f in found for f in filenames])
        rank = {row["filename"]: row["mislabel_score"] for row in json.loads(command.stdout)}
        score = np.array([rank.get(f, 0.0) for f in filenames])
        row = {"dataset": name, "seed": seed, "flip": flip, "variant": "command",
               **measure(score, flags, flipped, noise), "seconds": round(command_s, 2)}  # fmt: skip
        # precision@K needs every score: the command's stored ones, from the database.
        with database.connect(dsn) as conn:
            stored = dict(
                conn.execute(
                    "SELECT a.filename, m.mislabel_score FROM pgsearch.mislabel_scores m"
                    " JOIN pgsearch.assets a ON a.id = m.item_id WHERE a.dataset_id = %s",
                    (ds.id,),
                )
            )
        full = np.array([stored.get(f, 0.0) for f in filenames])
        row["precision_at_k"] = measure(full, flags, flipped, noise)["precision_at_k"]
        out.append(row)
    return out


def digits_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | variant | precision | recall | precision@K | flagged | noise flagged |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = f"**{r['variant']}**" if r["variant"] in (CHOSEN, "command") else r["variant"]
        lines.append(
            f"| {r['dataset']} | {name} | {r['precision']:.3f} | {r['recall']:.3f} | "
            f"{r['precision_at_k']:.3f} | {r['flagged']} | {r['noise']} |"
        )
    return "\n".join(lines)


# -- the synthetic task ----------------------------------------------------------------------------

# Runs the CLI in this process and writes its peak memory (VmHWM, KiB) to the file in argv[1].
# Not getrusage's ru_maxrss: Linux carries the parent's high-water mark over fork and exec into it.
_MEASURED = (
    "import re, sys\n"
    "out = sys.argv[1]\n"
    "from pgsearch.cli import main\n"
    "try:\n"
    "    main(sys.argv[2:])\n"
    "except SystemExit as e:\n"
    "    code = e.code or 0\n"
    "else:\n"
    "    code = 0\n"
    "status = open('/proc/self/status').read()\n"
    "open(out, 'w').write(re.search(r'VmHWM:\\s*(\\d+)', status).group(1))\n"
    "sys.exit(code)\n"
)


def timed_command(dsn: str, *args: str) -> dict[str, Any]:
    """Wall seconds and peak RSS (MB) of `pgsearch ARGS` in a fresh process."""
    with tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", _MEASURED, rss.name, *args],
            env={**os.environ, "PGSEARCH_DSN": dsn},
            capture_output=True,
            text=True,
        )
        seconds = time.monotonic() - started
        peak = Path(rss.name).read_text().strip()
    if done.returncode != 0:
        raise RuntimeError(f"pgsearch {' '.join(args)} failed: {done.stderr[-2000:]}")
    said = [line for line in done.stderr.replace("\r", "\n").splitlines() if line.startswith("mislabels of")]
    return {
        "seconds": round(seconds, 2),
        "peak_mb": round(int(peak or 0) / 1024),
        "summary": " ".join(said[-1:]),
    }


def add_labels(
    conn: Any,
    dataset: str,
    vectors: np.ndarray,
    ids: np.ndarray,
    *,
    clusters: int = 1000,
    classes: int = 100,
    flip: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """Labels for a dataset of bare vectors, consistent with its structure as a real class is:
    the data's clusters found again by k-means (`clusters` centres, Lloyd on a sample, every item
    then given its nearest centre), class = cluster mod `classes` (each class a union of clusters);
    then `flip` of the items moved to another class at random. One 'tag' shape per asset (COPY,
    then one refresh_label_counts of the dataset's assets). Returns the flipped flags, aligned with ids."""
    rng = np.random.default_rng(seed)
    x = vectors.astype(np.float32, copy=False)

    def nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
        out = np.empty(len(points), dtype=np.int64)
        half = 0.5 * np.einsum("ij,ij->i", centres, centres)
        for start in range(0, len(points), 32_768):
            out[start : start + 32_768] = np.argmax(points[start : start + 32_768] @ centres.T - half, axis=1)
        return out

    sample = x[rng.choice(len(x), size=min(len(x), 50 * clusters), replace=False)]
    centres = sample[rng.choice(len(sample), size=clusters, replace=False)].copy()
    for _ in range(8):
        home = nearest(sample, centres)
        sums = np.zeros_like(centres)
        np.add.at(sums, home, sample)
        counts = np.bincount(home, minlength=clusters)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    true = nearest(x, centres) % classes
    flipped = rng.random(len(x)) < flip
    given = true.copy()
    given[flipped] = (true[flipped] + rng.integers(1, classes, size=int(flipped.sum()))) % classes
    found = conn.execute("SELECT id FROM pgsearch.datasets WHERE name = %s", (dataset,)).fetchone()
    dataset_id = found[0]
    label_ids = [
        conn.execute(
            "INSERT INTO pgsearch.labels (dataset_id, name) VALUES (%s, %s) RETURNING id",
            (dataset_id, f"class_{c:03d}"),
        ).fetchone()[0]
        for c in range(classes)
    ]
    with (
        conn.cursor() as cur,
        cur.copy("COPY pgsearch.shapes (dataset_id, asset_id, label_id, kind) FROM STDIN") as copy,
    ):
        for asset, c in zip(ids.tolist(), given.tolist(), strict=True):
            copy.write_row((dataset_id, asset, label_ids[c], "tag"))
    conn.execute("SELECT pgsearch.refresh_label_counts(%s)", (ids.tolist(),))
    conn.commit()
    return flipped


def run_synthetic(
    *,
    home: Path | None = None,
    dsn: str | None = None,
    n: int = 100_000,
    dataset: str = "mislabels_synthetic",
) -> dict[str, Any]:
    """The whole command timed at n items with the graph already built (see the module doc)."""
    from synthetic import generate_chunks, write_dataset  # bench/synthetic.py

    from pgsearch import db as database
    from pgsearch.curate import graph as graphs
    from pgsearch.curate.copyio import read_space_vectors
    from pgsearch.curate.results import write_results
    from pgsearch.curate.spaces import resolve_space

    dsn = _dsn(home, dsn)
    report: dict[str, Any] = {"n": n}
    with database.connect(dsn) as conn:
        started = time.monotonic()
        write_dataset(conn, dataset, generate_chunks(n), progress=False)
        report["setup_vectors_s"] = round(time.monotonic() - started, 1)
        space = resolve_space(conn, dataset, "asset", None)
        vectors = read_space_vectors(conn, space.table_name, "asset_id", space.dim)
        started = time.monotonic()
        flipped = add_labels(conn, dataset, vectors.vectors, vectors.ids)
        report["setup_labels_s"] = round(time.monotonic() - started, 1)
        del vectors
        started = time.monotonic()
        graphs.build_graph(conn, space, ml.GRAPH_K)
        conn.commit()
        report["setup_graph_s"] = round(time.monotonic() - started, 1)
        # The stages, in this process.
        stage: dict[str, float] = {}
        t = time.monotonic()
        ds_id = space.dataset_id
        labels = ml.fetch_labels(conn, ds_id, "asset")
        stage["labels"] = time.monotonic() - t
        t = time.monotonic()
        graph = graphs.load_graph(conn, space)
        stage["read graph"] = time.monotonic() - t
        t = time.monotonic()
        codes = labels.codes_for(graph.ids)
        positions = ml.positions_of(graph.ids, graph.neighbor_ids[:, : ml.GRAPH_K])
        stage["positions"] = time.monotonic() - t
        t = time.monotonic()
        scores = ml.score_graph(graph.ids, positions, graph.distances[:, : ml.GRAPH_K], codes)
        stage["score"] = time.monotonic() - t
        t = time.monotonic()
        write_results(
            conn, space, "mislabels", ml.result_rows(scores, labels.names), items=len(graph.ids),
            flagged=None, params={"bench": True}, started=t,
        )  # fmt: skip
        conn.commit()
        stage["store"] = time.monotonic() - t
        report["stages_s"] = {k: round(v, 2) for k, v in stage.items()}
        assert np.array_equal(graph.ids, np.sort(graph.ids)) and len(graph.ids) == len(flipped)
        flags = scores.score >= np.float32(ml.DEFAULT_THRESHOLD)
        report["quality"] = measure(
            scores.score.astype(np.float64), flags, flipped, np.zeros(len(flags), dtype=bool)
        )
    args = ("mislabels", "--dataset", dataset, "-f", "json", "-n", "100")
    report["recompute"] = timed_command(dsn, *args, "--recompute")
    report["reuse"] = timed_command(dsn, *args)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("task", choices=("digits", "synthetic"))
    parser.add_argument(
        "--home", type=Path, help="PGSEARCH_HOME of the embedded server (default: a temp dir)"
    )
    parser.add_argument("--dsn", help="use this server instead of an embedded one")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--flips", type=float, nargs="+", default=[0.1, 0.05, 0.2])
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    if args.task == "digits":
        rows = run_digits(home=args.home, dsn=args.dsn, seeds=tuple(args.seeds), flips=tuple(args.flips))
        print(digits_table(rows))
    else:
        print(json.dumps(run_synthetic(home=args.home, dsn=args.dsn, n=args.n), indent=2))


if __name__ == "__main__":
    main()
