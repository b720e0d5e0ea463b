"""Asset sketches computed in numpy, written by the one embedding writer with the vectors.

A sketch is the sign bits of (asset vector - the space's sketch_center), one bit per dimension:
the exact path of a filtered similarity search ranks the matching rows by the Hamming distance of
their sketch to the query's and looks up the true distance of the best few hundred only
(translator/statement.py). It lives next to each filter's key (the asset row, group_members, the
status and field indexes) because reading it from anywhere else costs a lookup per matching row
(bench/README.md: 24 ms instead of 4-7 ms for a 1% group over 1M assets).

The bits must equal what the query side computes in SQL, `binary_quantize(q - sketch_center)`
over halfvec: pgvector subtracts two halfvecs in float4 and rounds to half, and two different
half values never round to a difference of 0, so the sign of the float32 difference of the two
half-precision values is the sign pgvector sees. binary_quantize sets a bit for values > 0.
"""

from __future__ import annotations

import numpy as np


def center_of(vectors: np.ndarray) -> np.ndarray:
    """The sketch centre a new space takes from its first vectors: their mean, in half precision
    (the halfvec it is stored as)."""
    return np.asarray(vectors, dtype=np.float16).astype(np.float32).mean(axis=0).astype(np.float16)


def sketch_bits(vectors: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Boolean (n, dim): bit i of row r is set when halfvec(v_r)[i] > halfvec(center)[i]."""
    v = np.asarray(vectors, dtype=np.float16).astype(np.float32)
    c = np.asarray(center, dtype=np.float16).astype(np.float32)
    return (v - c) > 0


def sketch_texts(vectors: np.ndarray, center: np.ndarray) -> list[str]:
    """Each row's sketch as varbit text ('0101...'), for COPY or a bound parameter."""
    bits = sketch_bits(vectors, center)
    chars = np.where(bits, np.uint8(ord("1")), np.uint8(ord("0"))).astype(np.uint8)
    return [row.tobytes().decode("ascii") for row in chars]


def sketches_array_text(space_id: int, sketch: str) -> str:
    """assets.sketches as array text with just this space's element: `[7:7]={0101...}`.
    The array is indexed by embedding space id (never reused)."""
    return f"[{space_id}:{space_id}]={{{sketch}}}"
