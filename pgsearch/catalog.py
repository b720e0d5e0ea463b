"""The translator's view of a dataset, read from the database: label names, metadata and
attribute keys, latest projection runs, embedding spaces."""

from __future__ import annotations

import psycopg

from pgsearch.datasets import get_dataset
from pgsearch.translator import Catalog, EmbeddingSpace


def load_catalog(conn: psycopg.Connection, dataset: str, *, keys: bool = True) -> Catalog:
    """The Catalog for `dataset` (NotFound, with suggestions, when there is no such dataset).

    keys=True reads the metadata and attribute keys in use, so a misspelt key is an error with
    suggestions; it scans the dataset's rows, so callers on very large datasets may pass False
    (every key is then accepted and a missing one simply matches nothing).
    """
    ds = get_dataset(conn, dataset)
    labels = frozenset(
        r[0] for r in conn.execute("SELECT name FROM pgsearch.labels WHERE dataset_id = %s", (ds.id,))
    )
    metadata_keys: frozenset[str] | None = None
    attribute_keys: frozenset[str] | None = None
    if keys:
        metadata_keys = frozenset(
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT jsonb_object_keys(metadata) FROM pgsearch.assets WHERE dataset_id = %s",
                (ds.id,),
            )
        )
        attribute_keys = frozenset(
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT jsonb_object_keys(attributes) FROM pgsearch.shapes WHERE dataset_id = %s",
                (ds.id,),
            )
        )
    runs: dict[str, int] = dict(
        conn.execute(
            "SELECT DISTINCT ON (target) target, id FROM pgsearch.projection_runs"
            " WHERE dataset_id = %s ORDER BY target, created_at DESC, id DESC",
            (ds.id,),
        ).fetchall()
    )
    spaces = tuple(
        EmbeddingSpace(id=r[0], model=r[1], target=r[2], dim=r[3], table=r[4])
        for r in conn.execute(
            "SELECT s.id, m.name, s.target, s.dim, s.table_name FROM pgsearch.embedding_spaces AS s"
            " JOIN pgsearch.embedding_models AS m ON m.id = s.model_id WHERE s.dataset_id = %s ORDER BY s.id",
            (ds.id,),
        )
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
    )
