"""Which way a similarity search finds its top k: the one place that decides, for the statement
built from translator/templates/statements.sql.

- Nearest first: the HNSW walk (CTE `ann`), then the exact path when the walk came up short
  (routed there, a narrow filter after hnsw.max_scan_tuples, fewer than k rows, or a session
  without hnsw.iterative_scan), so k rows come back whenever k rows match.
- Under a filter, the route first: a walk under a filter that keeps a fraction f of the rows
  visits about k / f rows; at f = 1% of 1M that is 10,000 visits, slower than the exact path and
  with recall near 0.8 (bench/README.md). `route` estimates the matching rows from a page sample
  of the table (about SAMPLE_ROWS rows, the same pages every time) and sends narrow filters
  straight to the exact path, whose cost is proportional to the matching rows.
- The exact path of an asset space of at least SKETCH_MIN_DIM dimensions reads no vector for most
  matching rows: it ranks them by the Hamming distance between their sketch, kept in the asset
  row by the embedding writer (sql/functions/write_asset_sketches.sql), and the query's (binary_quantize(q - the space's centre)),
  and computes the true distance of the best `rerank` only. The asset row is read for the filter
  anyway; a vector lookup per matching row cost twice that (bench/README.md). Shape spaces and
  small vectors read every matching row's vector.
- Some filters hand that exact path the matching ids and sketches from an index alone
  (covering.py): `"NAME" in groups` reads group_members instead of assets; status and indexed
  metadata fields read a btree that carries them. The route keeps those exact for wider filters
  (COVERED_EXACT_*).
- Least similar first: the exact path alone, reading every matching row's vector, with no route,
  walk or sketch: a walk towards -q starts among data that lies nowhere near -q and stops early
  (recall near 0.3 on embeddings sharing a common direction), and sketches rank the farthest rows
  poorly (the farthest 1,000 of 4,000 by sketch held as few as 40% of the true farthest 25,
  tests/test_dissimilar.py). About 0.85 s over a whole 1M dataset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from sqlglot import exp

from .catalog import Similarity
from .covering import covering
from .nodes import Kind

# The route: the exact path when the sample says fewer than EXACT_ROWS rows match, or fewer than
# EXACT_ROWS_MAX and under EXACT_SHARE of the dataset. The exact path costs about 3 us per
# matching row on 2 cores (1M rows, bench/README.md); the graph walk grows with 1 / share and
# loses recall below a few percent (0.94 at 5%, 0.90 at 2%, 0.80 at 1%).
SAMPLE_ROWS = 4000
EXACT_ROWS = 2000
EXACT_ROWS_MAX = 40_000
EXACT_SHARE = Decimal("0.04")
# The same when an index hands over the matching ids and sketches (covering.py): reading them
# costs about a tenth as much, and the exact path stays under the walk's cost up to about 7% of
# 1M rows.
COVERED_EXACT_ROWS_MAX = 80_000
COVERED_EXACT_SHARE = Decimal("0.07")
# The sketched exact path looks up the true distance of the best max(RERANK_MIN, RERANK_FACTOR * k):
# sign bits of 512-d vectors put the true top 100 inside the best 1,000 of 10,000 (recall 0.97-1.0
# on clustered data, lower without the centring), and each lookup costs about 3 us. Fewer bits
# rank more coarsely (256 bits held 94 of the top 100 in the best 1,000 of 2,000,
# tests/test_exact_answers.py), so spaces under RERANK_BITS dimensions look up proportionally
# more: twice as many at 256.
RERANK_MIN = 1000
RERANK_FACTOR = 10
RERANK_BITS = 512
# Fewer sign bits than this rank too coarsely to pre-rank by (and small vectors are cheap to
# read): the exact path of such spaces reads every matching row's vector.
SKETCH_MIN_DIM = 256


@dataclass(frozen=True)
class Route:
    """The route's thresholds (bound parameters of the `route` CTE)."""

    exact_rows: int
    exact_rows_max: int
    exact_share: Decimal
    sample_rows: int = SAMPLE_ROWS


@dataclass(frozen=True)
class SearchPath:
    """How one similarity search finds its top k, all inside its one statement.

    template: "nearest" (walk, then the exact path over every matching vector),
      "nearest_sketched" (walk, then the sketch-ranked exact path) or "dissimilar" (exact alone).
    route: sample the filter first and skip the walk when it is narrow; None: no route (no filter,
      or least similar first).
    rerank: how many sketch-ranked candidates the exact path reads the vectors of (sketched only).
    group: the candidates are this group's members, read from group_members (sketched only).
    """

    template: str
    route: Route | None = None
    rerank: int | None = None
    group: str | None = None

    @property
    def walk(self) -> bool:
        return self.template != "dissimilar"

    @property
    def sketched(self) -> bool:
        return self.template == "nearest_sketched"


def choose_path(
    sim: Similarity,
    k: int,
    condition: exp.Expr | None,
    field_columns: Mapping[tuple[str, Kind], str],
) -> SearchPath:
    """The path of a search for the top k of `sim` under `condition` (the type-checked query
    tree; None: no filter). field_columns: the catalog's generated columns (covering.py)."""
    if sim.dissimilar:
        return SearchPath("dissimilar")
    if sim.space.target != "asset" or sim.space.dim < SKETCH_MIN_DIM:
        return SearchPath("nearest", _route(condition, covered=False))
    covered = covering(condition, field_columns) if condition is not None else None
    return SearchPath(
        "nearest_sketched",
        _route(condition, covered=covered is not None),
        rerank=rerank_count(k, sim.space.dim),
        group=covered.group if covered is not None else None,
    )


def _route(condition: exp.Expr | None, *, covered: bool) -> Route | None:
    if condition is None:
        return None
    if covered:
        return Route(EXACT_ROWS, COVERED_EXACT_ROWS_MAX, COVERED_EXACT_SHARE)
    return Route(EXACT_ROWS, EXACT_ROWS_MAX, EXACT_SHARE)


def rerank_count(k: int, dim: int) -> int:
    """How many sketch-ranked rows the exact path looks up for a top k in a space of dim."""
    return max(RERANK_MIN, RERANK_FACTOR * k) * math.ceil(RERANK_BITS / dim)
