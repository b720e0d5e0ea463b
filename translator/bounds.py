"""What a search's inputs must be: the paging bounds and the query vector's checks, the one
definition of each. compile_query applies them; callers (CLI options, the Python API) can check
early with the same rules. Depends on nothing of sqlglot, so checking loads no parser."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from .errors import QueryLimitError, QueryTypeError

MAX_LIMIT = 100_000
MAX_OFFSET = 1_000_000


def check_paging(limit: object, offset: object) -> None:
    """Raises QueryLimitError unless 1 <= limit <= MAX_LIMIT and 0 <= offset <= MAX_OFFSET
    (whole numbers; bools are not). The statement's k is limit + offset."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise QueryLimitError(f"limit must be a whole number from 1 to {MAX_LIMIT}, not {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise QueryLimitError(f"offset must be a whole number from 0 to {MAX_OFFSET}, not {offset!r}")


def check_query_vector(vector: Sequence[object], dim: int) -> list[float]:
    """The query vector as floats; QueryTypeError unless it is `dim` finite real numbers (bools
    are not numbers here) with at least one not zero: a zero vector has no direction."""
    values: list[float] = []
    for index, x in enumerate(vector):
        if isinstance(x, bool) or not isinstance(x, numbers.Real):
            raise QueryTypeError(f"query vector values must be numbers; item {index} is {x!r}")
        values.append(float(x))
    if len(values) != dim:
        raise QueryTypeError(f"query vector has {len(values)} dimensions; the space has {dim}")
    if not all(math.isfinite(x) for x in values):
        raise QueryTypeError("query vector values must be finite numbers")
    if not any(values):
        raise QueryTypeError("query vector is all zeros: it has no direction to search along")
    return values


# Names that are index keys (labels, status, groups: btree and GIN entries) are kept well below
# the ~2.7 kB a btree entry may hold; the loader and the API refuse longer ones the same way.
INDEXED_TEXT_MAX_BYTES = 1000


def text_problem(text: str, limit: int | None = None) -> str | None:
    """Why PostgreSQL text cannot store `text` (or an index key, over `limit` bytes), or None:
    the one check of every name and value that goes into a text or jsonb column."""
    if "\x00" in text:
        return "NUL character (PostgreSQL text cannot store it)"
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        return f"lone surrogate {text[exc.start]!r} (not valid Unicode; PostgreSQL cannot store it)"
    if limit is not None and size > limit:
        return f"{size} bytes long, over the limit of {limit}"
    return None


def unit_vector(vector: Sequence[float]) -> list[float]:
    """The (checked) vector scaled to length 1: cosine distance ignores scale, and halfvec's range
    (65504) and precision (a 1e-9 component rounds to 0) would not. Scaled by the largest
    component first so that squaring neither overflows nor underflows."""
    largest = max(abs(float(x)) for x in vector)
    scaled = [float(x) / largest for x in vector]
    norm = math.sqrt(math.fsum(x * x for x in scaled))
    return [x / norm for x in scaled]
