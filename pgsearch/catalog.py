"""The translator's view of a dataset, read from the database: label names, metadata and
attribute keys, latest projection runs, embedding spaces, fields with generated columns, and the
spaces of the latest curation runs."""

from __future__ import annotations

import psycopg
from psycopg import sql

from pgsearch.datasets import get_dataset
from pgsearch.indexes import list_indexes
from pgsearch.translator import Catalog, EmbeddingSpace, FieldColumn
from pgsearch.translator.catalog import CURATION_TOOLS

# Above this many assets (or shapes) the keys are not collected: the scan would cost more than the
# query it serves.
KEY_SCAN_ROWS = 50_000


def _keys(conn: psycopg.Connection, table: str, column: str, dataset_id: int) -> frozenset[str] | None:
    """The distinct top-level keys of `column` (jsonb) over the dataset's rows of `table`, or
    None when it has more than KEY_SCAN_ROWS rows (the keys seen would not be all the keys)."""
    statement = sql.SQL(
        "WITH sample AS (SELECT {column} AS doc FROM {table} WHERE dataset_id = %s LIMIT %s)"
        " SELECT (SELECT count(*) FROM sample), ARRAY(SELECT DISTINCT jsonb_object_keys(doc) FROM sample)"
    ).format(column=sql.Identifier(column), table=sql.Identifier("pgsearch", table))
    found = conn.execute(statement, (dataset_id, KEY_SCAN_ROWS + 1)).fetchone()
    assert found is not None
    return None if found[0] > KEY_SCAN_ROWS else frozenset(found[1])


def load_catalog(conn: psycopg.Connection, dataset: str, *, keys: bool = True) -> Catalog:
    """The Catalog for `dataset` (NotFound, with suggestions, when there is no such dataset).

    keys=True reads the metadata and attribute keys in use, so a misspelt key is an error with
    suggestions. Only datasets of up to KEY_SCAN_ROWS rows are read for them (a bounded scan on
    every query); on larger ones, and with keys=False, every key is accepted and a missing one
    simply matches nothing.
    """
    ds = get_dataset(conn, dataset)
    labels = frozenset(
        r[0] for r in conn.execute("SELECT name FROM pgsearch.labels WHERE dataset_id = %s", (ds.id,))
    )
    metadata_keys: frozenset[str] | None = None
    attribute_keys: frozenset[str] | None = None
    if keys:
        metadata_keys = _keys(conn, "assets", "metadata", ds.id)
        attribute_keys = _keys(conn, "shapes", "attributes", ds.id)
    # The default model comes with the spaces (no extra round trip per search): it matters only
    # as one of the dataset's models with a space.
    rows = conn.execute(
        "SELECT s.id, m.name, s.target, s.dim, s.table_name, m.has_text, s.model_id = d.default_model_id"
        " FROM pgsearch.embedding_spaces AS s JOIN pgsearch.embedding_models AS m ON m.id = s.model_id"
        " JOIN pgsearch.datasets AS d ON d.id = s.dataset_id WHERE s.dataset_id = %s ORDER BY s.id",
        (ds.id,),
    ).fetchall()
    spaces = tuple(
        EmbeddingSpace(id=r[0], model=r[1], target=r[2], dim=r[3], table=r[4], has_text=bool(r[5]))
        for r in rows
    )
    default = next((r[1] for r in rows if r[6]), None)
    # In one round trip: the latest map run per target (its points are x, y, cluster), and the
    # latest run of each curation tool per target (curation_runs_dataset_idx serves it), whose
    # space's partition of the tool's table holds that run's results.
    latest = conn.execute(
        "SELECT * FROM (SELECT DISTINCT ON (target) target, NULL::text AS tool, id"
        "                 FROM pgsearch.projection_runs WHERE dataset_id = %(dataset)s"
        "                ORDER BY target, created_at DESC, id DESC) AS maps"
        " UNION ALL"
        " SELECT * FROM (SELECT DISTINCT ON (target, tool) target, tool, space_id"
        "                  FROM pgsearch.curation_runs WHERE dataset_id = %(dataset)s AND tool = ANY(%(tools)s)"
        "                 ORDER BY target, tool, id DESC) AS tools",
        {"dataset": ds.id, "tools": list(CURATION_TOOLS)},
    ).fetchall()
    runs = {r[0]: int(r[2]) for r in latest if r[1] is None}
    score_spaces = tuple((r[0], r[1], int(r[2])) for r in latest if r[1] is not None)
    field_columns = tuple(
        FieldColumn(i.field, i.kind, i.column)
        for i in list_indexes(conn, sizes=False)
        if i.column is not None
    )
    return Catalog(
        dataset_id=ds.id,
        dataset_name=ds.name,
        labels=labels,
        metadata_keys=metadata_keys,
        attribute_keys=attribute_keys,
        asset_run=runs.get("asset"),
        shape_run=runs.get("shape"),
        spaces=spaces,
        field_columns=field_columns,
        score_spaces=score_spaces,
        default_model=default,
    )
