"""Display fields of assets and shapes picked by id elsewhere (curation results, their
neighbours): what a listing or a page shows next to an id, read in one query."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.rows import dict_row

_ASSETS = "SELECT a.id, a.filename, a.path, a.width, a.height FROM pgsearch.assets AS a WHERE a.id = ANY(%s)"
_SHAPES = (
    "SELECT s.id, s.asset_id, a.filename, a.path, a.width, a.height, s.kind, s.bbox_x, s.bbox_y,"
    " s.bbox_width, s.bbox_height FROM pgsearch.shapes AS s JOIN pgsearch.assets AS a ON a.id = s.asset_id"
    " WHERE s.id = ANY(%s)"
)


def item_details(conn: psycopg.Connection, target: str, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """id -> filename, path, width, height (and for shapes: asset_id, kind, bbox_*) of the given
    assets (target "asset") or shapes; ids that do not exist are left out."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_ASSETS if target == "asset" else _SHAPES, (wanted,))
        return {int(r["id"]): r for r in cur.fetchall()}
