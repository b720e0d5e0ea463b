"""`pgsearch embed` and `pgsearch status`: embedding state per model of a dataset.

An item is pending for a model when it has no vector in that model's space and no 'failed'
state there (a 'pending' state row, or none at all: rows inserted with plain SQL count too).
`embed_pending` embeds whatever is pending (and with retry, what failed) reading the images from
`assets.path`; `drop_model` deactivates a model for a dataset by dropping its spaces (vectors,
HNSW index and states go at once).
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql

from pgsearch.datasets import get_dataset
from pgsearch.errors import NotFound
from pgsearch.loader import vectors, writer
from pgsearch.loader.annotations import ShapeSpec
from pgsearch.loader.engine import Embedded, Engine, progress_bar
from pgsearch.loader.images import ImageFacts
from pgsearch.loader.locks import dataset_writer
from pgsearch.loader.models import DEFAULT_MODEL, get_embedder
from pgsearch.loader.spaces import Space, dataset_models, dataset_spaces, ensure_model, ensure_space
from pgsearch.loader.vectors import Embedding
from pgsearch.loader.work import WorkItem, WorkResult

FAILED_LIST_LIMIT = 1000

# An asset or shape is to do in a space when it has no vector there and no 'failed' state (unless
# retrying). %(sspace)s is NULL when the model has no shape space for this dataset.
_ASSETS_TO_DO = """
SELECT a.id, a.path, a.filename, a.content_hash, a.width, a.height, a.size, a.format, a.load_error,
       NOT EXISTS (SELECT 1 FROM pgsearch.asset_embeddings e WHERE e.space_id = %(aspace)s AND e.asset_id = a.id)
       AND (st.state IS NULL OR st.state = 'pending' OR (%(retry)s AND st.state = 'failed')) AS need_asset,
       coalesce(st.attempts, 0)
  FROM pgsearch.assets a
  LEFT JOIN pgsearch.asset_embedding_state st ON st.space_id = %(aspace)s AND st.asset_id = a.id
 WHERE a.dataset_id = %(dataset)s AND a.id > %(after)s
   AND ((NOT EXISTS (SELECT 1 FROM pgsearch.asset_embeddings e WHERE e.space_id = %(aspace)s AND e.asset_id = a.id)
         AND (st.state IS NULL OR st.state = 'pending' OR (%(retry)s AND st.state = 'failed')))
        OR (%(sspace)s::bigint IS NOT NULL AND EXISTS (
            SELECT 1 FROM pgsearch.shapes s
              LEFT JOIN pgsearch.shape_embedding_state ss ON ss.space_id = %(sspace)s AND ss.shape_id = s.id
             WHERE s.asset_id = a.id AND s.kind <> 'tag'
               AND NOT EXISTS (SELECT 1 FROM pgsearch.shape_embeddings e
                                WHERE e.space_id = %(sspace)s AND e.shape_id = s.id)
               AND (ss.state IS NULL OR ss.state = 'pending' OR (%(retry)s AND ss.state = 'failed')))))
 ORDER BY a.id
 LIMIT %(limit)s
"""
_SHAPES_TO_DO = """
SELECT s.id, s.asset_id, s.kind, s.bbox_x, s.bbox_y, s.bbox_width, s.bbox_height, coalesce(ss.attempts, 0)
  FROM pgsearch.shapes s
  LEFT JOIN pgsearch.shape_embedding_state ss ON ss.space_id = %(sspace)s AND ss.shape_id = s.id
 WHERE s.asset_id = ANY(%(assets)s) AND s.kind <> 'tag'
   AND NOT EXISTS (SELECT 1 FROM pgsearch.shape_embeddings e WHERE e.space_id = %(sspace)s AND e.shape_id = s.id)
   AND (ss.state IS NULL OR ss.state = 'pending' OR (%(retry)s AND ss.state = 'failed'))
 ORDER BY s.id
"""


@dataclass
class EmbedSummary:
    dataset: str
    models: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "models": self.models, "seconds": round(self.seconds, 3)}


@dataclass
class _Todo:
    """An asset with something to embed: its image (need_asset) and/or some of its shapes."""

    asset_id: int
    path: str | None
    filename: str
    facts: ImageFacts  # as stored
    need_asset: bool
    attempts: int  # so far, in this model's asset space
    shapes: list[tuple[int, int]] = field(default_factory=list)  # (shape id, attempts so far)


def _params(asset_space: Space, shape_space: Space | None, retry: bool, **extra: Any) -> dict[str, Any]:
    return {
        "aspace": asset_space.id,
        "sspace": shape_space.id if shape_space else None,
        "retry": retry,
        **extra,
    }


def pending_counts(conn: psycopg.Connection, dataset_id: int, model: str) -> int:
    """Assets plus shapes still to embed (not failed) for `model` in the dataset."""
    return sum(
        _space_counts(conn, dataset_id, space)["pending"]
        for space in dataset_spaces(conn, dataset_id, model=model)
    )


def embed_pending(
    conn: psycopg.Connection,
    dataset_name: str,
    model: str | None = None,
    *,
    retry_failed: bool = False,
    embed_shapes: bool = True,
    batch_size: int = 32,
    workers: int | None = None,
    progress: bool = False,
) -> EmbedSummary:
    with dataset_writer(conn, dataset_name, "embed"):
        return _embed_pending(
            conn,
            dataset_name,
            model,
            retry_failed=retry_failed,
            embed_shapes=embed_shapes,
            batch_size=batch_size,
            workers=workers,
            progress=progress,
        )


def _embed_pending(
    conn: psycopg.Connection,
    dataset_name: str,
    model: str | None,
    *,
    retry_failed: bool,
    embed_shapes: bool,
    batch_size: int,
    workers: int | None,
    progress: bool,
) -> EmbedSummary:
    started = time.perf_counter()
    dataset = get_dataset(conn, dataset_name)
    models = [model] if model else dataset_models(conn, dataset.id)
    conn.commit()
    if not models:
        raise NotFound(
            f"dataset {dataset_name!r} has no embedding model yet; activate one with --model SPEC "
            f"(e.g. --model {DEFAULT_MODEL} or --model pixels)"
        )
    summary = EmbedSummary(dataset_name)
    for name in models:
        embedder = get_embedder(name)
        if embedder.warning:
            print(f"warning: {embedder.warning}", file=sys.stderr)
        with conn.transaction():
            mid = ensure_model(conn, embedder.name, embedder.dim, embedder.has_text, embedder.config())
            asset_space = ensure_space(conn, dataset.id, mid, "asset")
            shape_space = next(
                iter(dataset_spaces(conn, dataset.id, model=embedder.name, target="shape")), None
            )
            if shape_space is None and embed_shapes:
                row = conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM pgsearch.shapes WHERE dataset_id = %s AND kind <> 'tag')",
                    (dataset.id,),
                ).fetchone()
                if row and row[0]:
                    shape_space = ensure_space(conn, dataset.id, mid, "shape")
        result = _embed_model(
            conn, dataset.id, embedder, asset_space, shape_space, retry_failed, batch_size, workers, progress
        )
        summary.models.append(result)
    summary.seconds = time.perf_counter() - started
    return summary


def _embed_model(
    conn: psycopg.Connection,
    dataset_id: int,
    embedder: Any,
    asset_space: Space,
    shape_space: Space | None,
    retry: bool,
    batch_size: int,
    workers: int | None,
    progress: bool,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": embedder.name,
        "assets_done": 0,
        "assets_failed": 0,
        "shapes_done": 0,
        "shapes_failed": 0,
        "failed": [],
    }
    # for the progress bar: the to-do list without its limit
    total = (
        len(
            conn.execute(
                _ASSETS_TO_DO,
                _params(asset_space, shape_space, retry, dataset=dataset_id, after=0, limit=None),
            ).fetchall()
        )
        if progress
        else 0
    )
    conn.commit()

    def pages() -> Any:
        after = 0
        while True:
            rows = conn.execute(
                _ASSETS_TO_DO,
                _params(asset_space, shape_space, retry, dataset=dataset_id, after=after, limit=batch_size),
            ).fetchall()
            if not rows:
                conn.commit()
                return
            todos: dict[int, _Todo] = {}
            for aid, path, filename, chash, width, height, size, fmt, error, need_asset, attempts in rows:
                facts = ImageFacts(chash, size, fmt, width, height, error)
                todos[aid] = _Todo(aid, path, filename, facts, bool(need_asset), int(attempts))
            specs: dict[int, list[ShapeSpec]] = {aid: [] for aid in todos}
            if shape_space is not None:
                for sid, aid, kind, bx, by, bw, bh, attempts in conn.execute(
                    _SHAPES_TO_DO, _params(asset_space, shape_space, retry, assets=list(todos))
                ):
                    todos[aid].shapes.append((sid, int(attempts)))
                    specs[aid].append(ShapeSpec("", kind, (bx, by, bw, bh)))
            conn.commit()
            after = max(todos)  # the page is ordered by asset id
            batch = list(todos.values())
            items = [
                WorkItem(
                    path=t.path,
                    stored=specs[t.asset_id],
                    embed_asset=t.need_asset,
                    crop_shapes=True,
                    preprocess=embedder.preprocess,
                )
                for t in batch
            ]
            yield batch, items

    bar = progress_bar(total, progress, embedder.name)
    engine = Engine(embedder, workers, batch_size)
    try:
        with engine:
            for done in engine.run(pages()):
                _write(conn, done, asset_space, shape_space, out)
                bar.update(len(done.tag))
    finally:
        bar.close()
    for space in (asset_space, shape_space):
        if space is not None:
            conn.execute("SELECT pgsearch.build_embedding_index(%s)", (space.id,))
            conn.commit()
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier("pgsearch", space.table_name)))
            conn.commit()
    if asset_space is not None:
        # The new vectors rewrote their assets' sketches (and group_members): index-only scans
        # skip only pages the visibility map marks all-visible (translator/covering.py).
        autocommit = conn.autocommit
        conn.autocommit = True
        try:
            conn.execute("VACUUM (ANALYZE) pgsearch.assets, pgsearch.group_members")
        finally:
            conn.autocommit = autocommit
    return out


def _write(
    conn: psycopg.Connection,
    done: Embedded[list[_Todo]],
    asset_space: Space,
    shape_space: Space | None,
    out: dict[str, Any],
) -> None:
    """One page, one transaction: what decoding found out about the files, then the vectors
    and states of the model (vectors.py: the same checks and reasons as `pgsearch load`)."""
    facts: list[tuple[int, ImageFacts]] = []
    assets: list[Embedding] = []
    shapes: list[Embedding] = []
    for todo, result, asset_vector, crop_vectors in zip(
        done.tag, done.results, done.asset_vectors, done.crop_vectors, strict=True
    ):
        update = _facts_update(todo, result)
        if update is not None:
            facts.append((todo.asset_id, update))
        error = result.facts.error
        if todo.need_asset:
            embedding = vectors.asset_embedding(todo.asset_id, todo.attempts + 1, asset_vector, error)
            assets.append(embedding)
            if embedding.vector is None and len(out["failed"]) < FAILED_LIST_LIMIT:
                out["failed"].append({"filename": todo.filename, "reason": embedding.reason})
        for j, (sid, attempts) in enumerate(todo.shapes):
            vec = crop_vectors[j] if j < len(crop_vectors) else None
            crop = result.crops[j] if j < len(result.crops) else None
            shapes.append(vectors.shape_embedding(sid, attempts + 1, vec, error, crop))
    with conn.transaction():
        writer.update_asset_facts(conn, facts)
        out["assets_done"] += vectors.write(conn, asset_space, assets)
        out["assets_failed"] += sum(e.vector is None for e in assets)
        if shape_space is not None:
            out["shapes_done"] += vectors.write(conn, shape_space, shapes)
            out["shapes_failed"] += sum(e.vector is None for e in shapes)


def _facts_update(todo: _Todo, result: WorkResult) -> ImageFacts | None:
    """What the asset row should now say about its file, if that changed: the decoded facts
    where the row lacks them or recorded an error, or the new reason it cannot be read (the
    other facts kept; an asset without a path has nothing to read, which is no news)."""
    new = result.facts
    old = todo.facts
    if new.error is None:
        if old.error is not None or old.width is None or old.content_hash is None:
            return new
        return None
    if todo.path is not None and old.error != new.error:
        return replace(old, error=new.error)
    return None


# --- status -------------------------------------------------------------------------------------


def _reason_group(reason: str) -> str:
    """'corrupt image (image file is truncated)' and '... (other detail)' count as one reason."""
    return re.sub(r"\s*\([^()]*\)\s*$", "", reason or "unknown") or reason


def _space_counts(conn: psycopg.Connection, dataset_id: int, space: Space) -> dict[str, Any]:
    if space.target == "asset":
        total_sql = "SELECT count(*) FROM pgsearch.assets WHERE dataset_id = %s"
        failed_sql = (
            "SELECT st.reason, a.filename FROM pgsearch.asset_embedding_state st"
            " JOIN pgsearch.assets a ON a.id = st.asset_id WHERE st.space_id = %s AND st.state = 'failed'"
            " ORDER BY a.filename"
        )
        done_sql = "SELECT count(*) FROM pgsearch.asset_embeddings WHERE space_id = %s"
    else:
        total_sql = "SELECT count(*) FROM pgsearch.shapes WHERE dataset_id = %s AND kind <> 'tag'"
        failed_sql = (
            "SELECT st.reason, a.filename FROM pgsearch.shape_embedding_state st"
            " JOIN pgsearch.shapes s ON s.id = st.shape_id JOIN pgsearch.assets a ON a.id = s.asset_id"
            " WHERE st.space_id = %s AND st.state = 'failed' ORDER BY a.filename, s.id"
        )
        done_sql = "SELECT count(*) FROM pgsearch.shape_embeddings WHERE space_id = %s"
    total = int(conn.execute(total_sql, (dataset_id,)).fetchone()[0])  # type: ignore[index]
    done = int(conn.execute(done_sql, (space.id,)).fetchone()[0])  # type: ignore[index]
    groups: dict[str, dict[str, Any]] = {}
    failed = 0
    for reason, filename in conn.execute(failed_sql, (space.id,)):
        failed += 1
        key = _reason_group(reason)
        group = groups.setdefault(key, {"reason": key, "count": 0, "examples": []})
        group["count"] += 1
        if len(group["examples"]) < 3:
            group["examples"].append({"filename": filename, "reason": reason})
    reasons = sorted(groups.values(), key=lambda g: (-g["count"], g["reason"]))
    return {
        "total": total,
        "done": done,
        "failed": failed,
        "pending": max(total - done - failed, 0),
        "indexed": space.indexed,
        "reasons": reasons,
    }


def status(conn: psycopg.Connection, dataset_name: str) -> dict[str, Any]:
    dataset = get_dataset(conn, dataset_name)
    row = conn.execute(
        "SELECT count(*), count(load_error), (SELECT count(*) FROM pgsearch.shapes WHERE dataset_id = %s)"
        " FROM pgsearch.assets WHERE dataset_id = %s",
        (dataset.id, dataset.id),
    ).fetchone()
    assert row is not None
    models: dict[str, dict[str, Any]] = {}
    for space in dataset_spaces(conn, dataset.id):
        entry = models.setdefault(
            space.model,
            {
                "model": space.model,
                "dim": space.dim,
                "has_text": space.has_text,
                "assets": None,
                "shapes": None,
            },
        )
        entry["assets" if space.target == "asset" else "shapes"] = _space_counts(conn, dataset.id, space)
    conn.commit()
    return {
        "dataset": dataset.name,
        "assets": int(row[0]),
        "unreadable_assets": int(row[1]),
        "shapes": int(row[2]),
        "models": list(models.values()),
    }


def drop_model(conn: psycopg.Connection, dataset_name: str, model: str) -> list[str]:
    """Deactivates `model` for the dataset: drops its spaces; returns the dropped partitions."""
    dataset = get_dataset(conn, dataset_name)
    spaces = dataset_spaces(conn, dataset.id, model=model)
    if not spaces:
        known = dataset_models(conn, dataset.id)
        conn.commit()
        raise NotFound(
            f"dataset {dataset_name!r} has no embeddings of model {model!r}; "
            f"its models: {', '.join(known) if known else 'none'}"
        )
    with conn.transaction():
        for space in spaces:
            conn.execute("SELECT pgsearch.drop_embedding_space(%s)", (space.id,))
    return [s.table_name for s in spaces]
