"""`pgsearch load`: scan, validate, then stream files through decoding workers and the model into
Postgres, one transaction per batch.

Resumability: a batch's asset rows, shapes, vectors and embedding states commit together, and a
file whose stored content hash is unchanged and whose embeddings are done (or failed) is skipped
after hashing. So a load killed at any moment and run again ends with the rows an uninterrupted
load writes; ids and timestamps aside.

Re-loading rules: unchanged file -> nothing (but new --group / --status / metadata are applied);
changed file (other hash) -> its row is updated, its vectors in every model are dropped and this
model's recomputed; shapes are replaced by this load's annotations for the files they mention,
and kept (re-embedded) otherwise. Groups accumulate, metadata keys merge, status is overwritten.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from pgsearch.datasets import ensure_dataset, get_dataset, model_to_embed, remember_model
from pgsearch.errors import NotFound
from pgsearch.loader import vectors, writer
from pgsearch.loader.annotations import (
    INDEXED_TEXT_MAX_BYTES,
    AnnotationSet,
    FileIndex,
    ShapeSpec,
    parse_annotations,
    text_problem,
)
from pgsearch.loader.crops import CONTEXT_PADDING
from pgsearch.loader.engine import Embedded, Engine, progress_bar
from pgsearch.loader.errors import LoadInputError
from pgsearch.loader.external import ExternalVectors, read_embeddings
from pgsearch.loader.images import DEFAULT_MAX_PIXELS
from pgsearch.loader.locks import dataset_writer
from pgsearch.loader.metadata import MetadataRow, parse_metadata
from pgsearch.loader.models import DEFAULT_MODEL, Embedder, get_embedder, parse_spec
from pgsearch.loader.rows import AssetRow, ShapeRow, columns
from pgsearch.loader.scan import ScannedFile, scan
from pgsearch.loader.spaces import Space, dataset_models, dataset_spaces, ensure_model, ensure_space
from pgsearch.loader.vectors import Embedding
from pgsearch.loader.work import WorkItem, WorkResult, same_shapes, settle

FAILED_LIST_LIMIT = 1000


@dataclass
class LoadOptions:
    root: str
    dataset: str
    annotations: str | None = None
    format: str | None = None
    metadata: str | None = None
    groups: list[str] = field(default_factory=list)
    status: str | None = None
    model: str | None = None  # None: the dataset's first model, else DEFAULT_MODEL
    embed: bool = True
    embed_shapes: bool = True
    embeddings: str | None = None
    batch_size: int = 32
    workers: int | None = None
    skip_bad_annotations: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    padding: float = CONTEXT_PADDING
    progress: bool = False
    prune: bool = False  # delete the assets whose files under root are gone
    follow_symlinks: bool = False  # also follow links that lead outside the folder


@dataclass
class LoadSummary:
    dataset: str
    model: str | None
    files: int = 0
    assets_new: int = 0
    assets_updated: int = 0
    assets_unchanged: int = 0
    assets_failed: int = 0
    shapes_inserted: int = 0
    shapes_deleted: int = 0
    shapes_failed: int = 0
    shapes_skipped: int = 0
    vectors_assets: int = 0
    vectors_shapes: int = 0
    assets_missing: int = 0  # stored assets from under root whose file is gone (kept)
    assets_pruned: int = 0  # ... deleted with --prune
    missing: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    dropped_annotations: list[str] = field(default_factory=list)
    index_built: list[str] = field(default_factory=list)
    pending_other_models: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    # decoding + embedding + writing, without scanning, validation and building the model
    streaming_seconds: float = 0.0
    model_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "model": self.model,
            "files": self.files,
            "assets": {
                "new": self.assets_new,
                "updated": self.assets_updated,
                "unchanged": self.assets_unchanged,
                "failed": self.assets_failed,
                "missing": self.assets_missing,
                "pruned": self.assets_pruned,
            },
            "shapes": {
                "inserted": self.shapes_inserted,
                "deleted": self.shapes_deleted,
                "failed": self.shapes_failed,
                "skipped": self.shapes_skipped,
            },
            "embeddings": {"assets": self.vectors_assets, "shapes": self.vectors_shapes},
            "failed": self.failed,
            "missing": self.missing,
            "dropped_annotations": self.dropped_annotations,
            "index_built": self.index_built,
            "pending_other_models": self.pending_other_models,
            "seconds": round(self.seconds, 3),
            "streaming_seconds": round(self.streaming_seconds, 3),
            "model_seconds": round(self.model_seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
            "warnings": self.warnings,
        }


@dataclass
class StoredShape:
    id: int
    spec: ShapeSpec
    state: str | None  # 'done' or 'failed' in this load's shape space; None: still to embed
    attempts: int


@dataclass
class Existing:
    """A scanned file's asset as stored, with its embedding state in this load's spaces."""

    row: AssetRow
    asset_state: str | None  # 'done' or 'failed' in this load's asset space; None: still to embed
    attempts: int
    shapes: list[StoredShape] = field(default_factory=list)


@dataclass
class FilePlan:
    file: ScannedFile
    existing: Existing | None
    desired: list[ShapeSpec] | None
    status: str | None
    groups: list[str]
    metadata: dict[str, Any]
    asset_id: int = 0


@dataclass
class NewShape:
    """A shape the batch inserts. Its id is reserved once the batch knows how many it needs; its
    embedding (None for a tag or without a shape space) gets the id then."""

    plan: FilePlan
    spec: ShapeSpec
    embedding: Embedding | None


@dataclass
class Batch:
    """What one batch writes: collected file by file, then written table by table."""

    new_rows: list[AssetRow] = field(default_factory=list)
    updated_rows: list[AssetRow] = field(default_factory=list)
    changed_assets: list[int] = field(default_factory=list)  # new image: vectors go in every model
    reset_shapes: list[int] = field(default_factory=list)  # kept shapes of a new image: likewise
    deleted_shapes: list[int] = field(default_factory=list)  # replaced by this load's annotations
    shapes_replaced_of: list[int] = field(default_factory=list)  # the assets of deleted_shapes
    new_shapes: list[NewShape] = field(default_factory=list)
    asset_embeddings: list[Embedding] = field(default_factory=list)  # this load's model
    shape_embeddings: list[Embedding] = field(default_factory=list)
    sketched: set[int] = field(default_factory=set)  # new assets whose row carries its sketch


# How a scanned file relates to its stored asset: no asset yet, the same image (same hash), or
# another image under the same filename.
NEW, SAME, CHANGED = "new", "same", "changed"


def _state(state: str | None, attempts: int | None, has_vector: bool) -> str | None:
    """'done' when the vector is there, 'failed' when it failed; else the item waits (pending)."""
    if has_vector:
        return "done"
    return "failed" if state == "failed" else None


class Loader:
    """One `pgsearch load` run over an open connection."""

    def __init__(self, conn: psycopg.Connection, options: LoadOptions) -> None:
        self.conn = conn
        self.o = options
        self.summary = LoadSummary(options.dataset, None)
        self.embedder: Embedder | None = None
        self.external: ExternalVectors | None = None
        self.asset_space: Space | None = None
        self.shape_space: Space | None = None
        self.labels: dict[str, int] = {}

    # --- before anything is written -------------------------------------------------------

    def prepare(self) -> tuple[list[ScannedFile], AnnotationSet | None, dict[str, MetadataRow]]:
        o = self.o
        if o.batch_size < 1:
            raise LoadInputError("--batch-size must be at least 1")
        if o.annotations and not o.format:
            raise LoadInputError("--annotations needs --format coco|yolo|voc")
        if o.status is not None and not o.status.strip():
            raise LoadInputError("--status must not be empty")
        # Command-line values go into index keys too: checked as the files' values are.
        for flag, values in (("--dataset", [o.dataset]), ("--group", o.groups), ("--status", [o.status])):
            for value in values:
                problem = text_problem(value, INDEXED_TEXT_MAX_BYTES) if value is not None else None
                if problem is not None:
                    raise LoadInputError(f"{flag} {value!r}: {problem}")
        files = scan(o.root, follow_symlinks=o.follow_symlinks)
        if not files:
            raise LoadInputError(
                f"{o.root}: no images found (looked for jpg, jpeg, png, webp, bmp, tif, tiff, gif)"
            )
        index = FileIndex(f.filename for f in files)
        annotations = None
        if o.format:
            annotations = parse_annotations(o.format, o.annotations, o.root, index, o.skip_bad_annotations)
            self.summary.dropped_annotations.extend(annotations.dropped)
        metadata: dict[str, MetadataRow] = {}
        if o.metadata:
            metadata, dropped = parse_metadata(o.metadata, index, o.skip_bad_annotations)
            self.summary.dropped_annotations.extend(dropped)
        if o.embeddings:
            self.external = read_embeddings(o.embeddings, index)
        return files, annotations, metadata

    def choose_model(self) -> str | None:
        o = self.o
        if self.external is not None:
            name = parse_spec(o.model).name if o.model else f"external:{self.external.label}"
            return name
        if not o.embed:
            return None
        if o.model:
            return o.model
        try:
            found = model_to_embed(self.conn, get_dataset(self.conn, o.dataset).id)
        except NotFound:
            found = None
        finally:
            self.conn.commit()
        # The dataset's default model, else its first, else pgsearch's.
        return found or DEFAULT_MODEL

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> LoadSummary:
        started = time.perf_counter()
        files, annotations, metadata = self.prepare()  # every input checked before anything starts
        # Workers start now, so they import while the model is built.
        with Engine(None, self.o.workers, self.o.batch_size) as engine:
            return self._run(engine, started, files, annotations, metadata)

    def _run(
        self,
        engine: Engine,
        started: float,
        files: list[ScannedFile],
        annotations: AnnotationSet | None,
        metadata: dict[str, MetadataRow],
    ) -> LoadSummary:
        model_name = self.choose_model()
        if model_name is not None and self.external is None:
            self.embedder = get_embedder(model_name)
            if self.embedder.warning:
                self.summary.warnings.append(self.embedder.warning)
                print(f"warning: {self.embedder.warning}", file=sys.stderr)
            model_name = self.embedder.name
        self.summary.model = model_name
        self.summary.files = len(files)
        self.setup(model_name, annotations)

        engine.embedder = self.embedder
        bar = progress_bar(len(files), self.o.progress, model_name)
        streaming_started = time.perf_counter()
        try:
            for done in engine.run(self.chunks(files, annotations, metadata)):
                self.write(done)
                bar.update(len(done.tag))
        finally:
            bar.close()
        self.summary.streaming_seconds = time.perf_counter() - streaming_started
        self.gone_from_disk(files)
        self.finish()
        self.summary.model_seconds = engine.stats.model_seconds
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def setup(self, model_name: str | None, annotations: AnnotationSet | None) -> None:
        """Dataset, labels, model and spaces: idempotent, committed before the first batch."""
        conn = self.conn
        with conn.transaction():
            self.dataset = ensure_dataset(conn, self.o.dataset)
            if annotations is not None and annotations.labels:
                conn.execute(
                    "INSERT INTO pgsearch.labels (dataset_id, name) SELECT %s, unnest(%s::text[])"
                    " ON CONFLICT (dataset_id, name) DO NOTHING",
                    (self.dataset.id, annotations.labels),
                )
            self.labels = {
                name: lid
                for lid, name in conn.execute(
                    "SELECT id, name FROM pgsearch.labels WHERE dataset_id = %s", (self.dataset.id,)
                )
            }
            if model_name is not None:
                if self.external is not None:
                    dim, has_text, config = (
                        self.external.dim,
                        parse_spec(model_name).has_text,
                        {"kind": "external", "source": self.external.label},
                    )
                else:
                    assert self.embedder is not None
                    dim, has_text, config = self.embedder.dim, self.embedder.has_text, self.embedder.config()
                existing = dataset_models(conn, self.dataset.id)
                if len(existing) == 1 and existing[0] != model_name:
                    # A second model joins: the first becomes the default, so what searched it
                    # without naming it keeps doing so.
                    remember_model(conn, self.o.dataset, existing[0])
                model_id = ensure_model(conn, model_name, dim, has_text, config)
                self.asset_space = ensure_space(conn, self.dataset.id, model_id, "asset")
                if self.o.embed_shapes and self.external is None and self._has_geometric_shapes(annotations):
                    self.shape_space = ensure_space(conn, self.dataset.id, model_id, "shape")
            spaces = dataset_spaces(conn, self.dataset.id)
            # every model's spaces: a changed image drops its vectors in all of them
            self.all_asset_spaces = [s for s in spaces if s.target == "asset"]
            self.all_shape_spaces = [s for s in spaces if s.target == "shape"]

    def _has_geometric_shapes(self, annotations: AnnotationSet | None) -> bool:
        if annotations is not None and any(
            s.kind != "tag" for specs in annotations.shapes.values() for s in specs
        ):
            return True
        row = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pgsearch.shapes WHERE dataset_id = %s AND kind <> 'tag')",
            (self.dataset.id,),
        ).fetchone()
        return bool(row and row[0])

    # --- planning ---------------------------------------------------------------------------

    def chunks(
        self, files: list[ScannedFile], annotations: AnnotationSet | None, metadata: dict[str, MetadataRow]
    ) -> Iterator[tuple[list[FilePlan], list[WorkItem]]]:
        """Batches of about batch_size images to embed (files plus shape crops), planned lazily."""
        budget = self.o.batch_size if self.embedder is not None else max(self.o.batch_size, 256)
        start = 0
        while start < len(files):
            # Plan a generous window, then cut it where the embedding work reaches the budget.
            window = files[start : start + budget]
            plans = self.plan(window, annotations, metadata)
            taken: list[FilePlan] = []
            work = 0
            for plan in plans:
                cost = 1  # the image, plus its crops when shapes are embedded
                if self.shape_space:
                    if plan.desired is not None:
                        cost += len(plan.desired)
                    elif plan.existing is not None:
                        cost += len(plan.existing.shapes)
                if taken and work + cost > budget:
                    break
                taken.append(plan)
                work += cost
            start += len(taken)
            yield taken, [self.work_item(p) for p in taken]

    def plan(
        self, files: list[ScannedFile], annotations: AnnotationSet | None, metadata: dict[str, MetadataRow]
    ) -> list[FilePlan]:
        existing = self.fetch_existing([f.filename for f in files])
        plans = []
        for f in files:
            meta = metadata.get(f.filename)
            desired = annotations.shapes.get(f.filename) if annotations is not None else None
            plans.append(
                FilePlan(
                    f,
                    existing.get(f.filename),
                    desired,
                    status=(meta.status if meta and meta.status else None) or self.o.status,
                    groups=_unique([*self.o.groups, *(meta.groups if meta else [])]),
                    metadata=dict(meta.metadata) if meta else {},
                )
            )
        return plans

    def fetch_existing(self, filenames: list[str]) -> dict[str, Existing]:
        """The stored assets of these files (by filename) with their shapes and their embedding
        state in this load's spaces."""
        conn = self.conn
        aspace = self.asset_space.id if self.asset_space else None
        sspace = self.shape_space.id if self.shape_space else None
        rows = conn.execute(_EXISTING_ASSETS, (aspace, aspace, self.dataset.id, filenames)).fetchall()
        out: dict[str, Existing] = {}
        by_id: dict[int, Existing] = {}
        for *asset, state, attempts, has_vec in rows:
            e = Existing(AssetRow(*asset), _state(state, attempts, has_vec), attempts or 0)
            out[e.row.filename] = by_id[e.row.id] = e
        if by_id:
            shape_rows = conn.execute(_EXISTING_SHAPES, (sspace, sspace, list(by_id))).fetchall()
            for (
                sid,
                aid,
                label,
                kind,
                bx,
                by,
                bw,
                bh,
                geometry,
                area,
                attrs,
                state,
                attempts,
                has_vec,
            ) in shape_rows:
                bbox = (bx, by, bw, bh) if bx is not None else None
                spec = ShapeSpec(label, kind, bbox, geometry, area, attrs)
                by_id[aid].shapes.append(
                    StoredShape(sid, spec, _state(state, attempts, has_vec), attempts or 0)
                )
        conn.commit()
        return out

    def work_item(self, plan: FilePlan) -> WorkItem:
        e = plan.existing
        embed_asset = self.asset_space is not None and self.embedder is not None
        crop = self.shape_space is not None and self.embedder is not None
        skip = False
        if e is not None:
            # A file with the same hash can stop after hashing when nothing else is to do.
            shapes_same = plan.desired is None or same_shapes(
                settle(plan.desired, e.row.width, e.row.height)[0], [s.spec for s in e.shapes]
            )
            asset_done = self.asset_space is None or e.asset_state is not None
            shapes_done = self.shape_space is None or all(
                s.state is not None for s in e.shapes if s.spec.kind != "tag"
            )
            skip = shapes_same and asset_done and shapes_done
        return WorkItem(
            path=plan.file.path,
            known_hash=e.row.content_hash if e else None,
            skip_if_same=skip,
            stored=[s.spec for s in e.shapes] if e else [],
            desired=plan.desired,
            embed_asset=embed_asset,
            crop_shapes=crop,
            preprocess=self.embedder.preprocess if self.embedder is not None else None,
            max_pixels=self.o.max_pixels,
            padding=self.o.padding,
        )

    # --- writing ----------------------------------------------------------------------------

    def write(self, done: Embedded[list[FilePlan]]) -> None:
        """One batch, one transaction: asset rows, shapes, then this model's vectors and states.
        Committing them together is what makes a killed load resumable (see the module doc)."""
        batch = Batch()
        with self.conn.transaction():
            fresh_ids = iter(
                writer.reserve_ids(self.conn, "assets", sum(p.existing is None for p in done.tag))
            )
            for i, (plan, result) in enumerate(zip(done.tag, done.results, strict=True)):
                mode = self.collect_asset(batch, plan, result, fresh_ids)
                if result.unchanged:
                    continue  # stopped after hashing: nothing was decoded, nothing to embed
                self.collect_shapes(batch, plan, result, mode, done.crop_vectors[i])
                self.collect_asset_embedding(batch, plan, result, mode, done.asset_vectors[i])
            self.write_assets(batch)
            self.write_shapes(batch)
            self.write_vectors(batch)
            # Updated rows may have new groups (and new or cleared sketches): their memberships.
            writer.sync_group_members(self.conn, self.dataset.id, [r.id for r in batch.updated_rows])

    def collect_asset(
        self, batch: Batch, plan: FilePlan, result: WorkResult, fresh_ids: Iterator[int]
    ) -> str:
        """The file's asset row: new, rewritten for another image, or as stored with this load's
        path, status, groups and metadata (written only when that changes anything)."""
        s = self.summary
        e = plan.existing
        facts = result.facts
        if e is not None and (
            result.unchanged or (facts.content_hash is not None and facts.content_hash == e.row.content_hash)
        ):
            plan.asset_id = e.row.id
            row = _with_attributes(replace(e.row, path=plan.file.path), plan)
            if row != e.row:
                batch.updated_rows.append(row)
                s.assets_updated += 1
            else:
                s.assets_unchanged += 1
            return SAME
        if e is None:
            mode, plan.asset_id = NEW, next(fresh_ids)
            s.assets_new += 1
        else:
            mode, plan.asset_id = CHANGED, e.row.id
            s.assets_updated += 1
            batch.changed_assets.append(e.row.id)
        row = AssetRow(
            id=plan.asset_id,
            dataset_id=self.dataset.id,
            filename=plan.file.filename,
            path=plan.file.path,
            content_hash=facts.content_hash,
            width=facts.width,
            height=facts.height,
            size=facts.size,
            format=facts.format,
            # what a user set on the asset stays with a new image under its filename
            status=e.row.status if e else "none",
            groups=list(e.row.groups) if e else [],
            metadata=dict(e.row.metadata) if e else {},
            load_error=facts.error,
        )
        (batch.new_rows if mode == NEW else batch.updated_rows).append(_with_attributes(row, plan))
        if facts.error:
            s.assets_failed += 1
            if len(s.failed) < FAILED_LIST_LIMIT:
                s.failed.append({"filename": plan.file.filename, "reason": facts.error})
        return mode

    def collect_shapes(
        self,
        batch: Batch,
        plan: FilePlan,
        result: WorkResult,
        mode: str,
        crop_vectors: list[np.ndarray | None],
    ) -> None:
        """The file's shapes and their embeddings in this load's shape space. The worker decided
        (result.new_shapes) whether this load's annotations replace the stored shapes; stored
        shapes that stay are embedded again when the image changed, else only if still pending."""
        self.summary.shapes_skipped += result.dropped_shapes
        stored = plan.existing.shapes if plan.existing else []
        embed = self.shape_space is not None

        def embedding(j: int, shape_id: int, attempts: int) -> Embedding:
            vec = crop_vectors[j] if j < len(crop_vectors) else None
            crop = result.crops[j] if j < len(result.crops) else None
            return vectors.shape_embedding(shape_id, attempts, vec, result.facts.error, crop)

        if result.new_shapes is not None:
            batch.deleted_shapes.extend(sh.id for sh in stored)
            if stored:
                batch.shapes_replaced_of.append(plan.asset_id)
            self.summary.shapes_deleted += len(stored)
            for j, spec in enumerate(result.new_shapes):
                new = NewShape(plan, spec, embedding(j, 0, 1) if embed and spec.kind != "tag" else None)
                batch.new_shapes.append(new)
                if new.embedding is not None:
                    batch.shape_embeddings.append(new.embedding)
            return
        if mode == CHANGED:
            batch.reset_shapes.extend(sh.id for sh in stored)
        if not embed:
            return
        for j, sh in enumerate(stored):
            if sh.spec.kind == "tag":
                continue
            if mode == CHANGED:
                batch.shape_embeddings.append(embedding(j, sh.id, 1))
            elif sh.state is None:
                batch.shape_embeddings.append(embedding(j, sh.id, sh.attempts + 1))

    def collect_asset_embedding(
        self, batch: Batch, plan: FilePlan, result: WorkResult, mode: str, vector: np.ndarray | None
    ) -> None:
        """The image's vector in this load's asset space, unless the same image has one there
        already, or failed there (retrying is `pgsearch embed --retry-failed`)."""
        if self.asset_space is None:
            return
        e = plan.existing if mode == SAME else None
        if e is not None and e.asset_state is not None:
            return
        attempts = (e.attempts if e is not None else 0) + 1
        error = result.facts.error
        if self.external is not None and not error:
            vector, reason = self.external.vector(plan.file.filename)
            if vector is None:
                batch.asset_embeddings.append(Embedding(plan.asset_id, attempts, reason=reason))
                return
        batch.asset_embeddings.append(vectors.asset_embedding(plan.asset_id, attempts, vector, error))

    def write_assets(self, batch: Batch) -> None:
        """Asset rows first: shapes and vectors reference them. An asset with a new image loses
        its vectors in every model, so each model sees it pending again."""
        self.count_new_shapes(batch)
        writer.insert_assets(self.conn, batch.new_rows, self.new_asset_sketches(batch))
        writer.update_assets(self.conn, batch.updated_rows)
        vectors.forget(self.conn, self.all_asset_spaces, batch.changed_assets)

    def count_new_shapes(self, batch: Batch) -> None:
        """New assets' label counts from the shapes this batch writes for them, into their rows."""
        counts: dict[int, Counter[str]] = {}
        for new in batch.new_shapes:
            counts.setdefault(new.plan.asset_id, Counter())[new.spec.label] += 1
        for row in batch.new_rows:
            found = counts.get(row.id)
            if found:
                row.label_counts = dict(found)
                row.annotation_count = sum(found.values())

    def new_asset_sketches(self, batch: Batch) -> dict[int, str]:
        """The sketches of new assets this batch embeds, for their rows' COPY (vectors.py)."""
        if self.asset_space is None or not batch.new_rows:
            return {}
        new = {r.id for r in batch.new_rows}
        done = [e for e in batch.asset_embeddings if e.vector is not None and e.item_id in new]
        if not done:
            return {}
        stacked = np.stack([np.asarray(e.vector, dtype=np.float32) for e in done])
        batch.sketched = {e.item_id for e in done}
        return vectors.new_asset_sketches(self.conn, self.asset_space, [e.item_id for e in done], stacked)

    def write_shapes(self, batch: Batch) -> None:
        """Shapes replaced or added, then the label counts of the existing assets whose shapes
        changed (a new asset's row was COPYed with its counts: count_new_shapes)."""
        conn = self.conn
        vectors.forget(conn, self.all_shape_spaces, batch.reset_shapes)
        writer.delete_shapes(conn, batch.deleted_shapes, self.all_shape_spaces)
        new_rows = {r.id for r in batch.new_rows}
        touched = {a for a in batch.shapes_replaced_of if a not in new_rows}
        touched.update(n.plan.asset_id for n in batch.new_shapes if n.plan.asset_id not in new_rows)
        if not batch.new_shapes:
            writer.refresh_label_counts(conn, list(touched))
            return
        rows: list[ShapeRow] = []
        for sid, new in zip(
            writer.reserve_ids(conn, "shapes", len(batch.new_shapes)), batch.new_shapes, strict=True
        ):
            if new.embedding is not None:
                new.embedding.item_id = sid
            spec = new.spec
            x, y, w, h = spec.bbox or (None, None, None, None)
            rows.append(
                ShapeRow(
                    id=sid,
                    dataset_id=self.dataset.id,
                    asset_id=new.plan.asset_id,
                    label_id=self.labels[spec.label],
                    kind=spec.kind,
                    bbox_x=x,
                    bbox_y=y,
                    bbox_width=w,
                    bbox_height=h,
                    geometry=spec.geometry,
                    area=spec.area,
                    attributes=spec.attributes,
                )
            )
        writer.insert_shapes(conn, rows)
        self.summary.shapes_inserted += len(rows)
        writer.refresh_label_counts(conn, list(touched))

    def write_vectors(self, batch: Batch) -> None:
        """This load's model: vectors and states of what the batch embedded (or failed to)."""
        s = self.summary
        if self.asset_space is not None:
            s.vectors_assets += vectors.write(
                self.conn, self.asset_space, batch.asset_embeddings, sketched=batch.sketched
            )
        if self.shape_space is not None:
            s.vectors_shapes += vectors.write(self.conn, self.shape_space, batch.shape_embeddings)
            s.shapes_failed += sum(e.vector is None for e in batch.shape_embeddings)

    def gone_from_disk(self, files: list[ScannedFile]) -> None:
        """Assets this folder loaded earlier whose file is not there any more: reported, and with
        --prune deleted (their shapes, vectors, states and memberships go with them: foreign keys)
        in one transaction. An asset counts only when its stored path, normalised, lies under this
        load's root, is not a file this scan found, and names nothing on the disk any more: a
        dataset filled from several (even nested) folders loses nothing to a reload of one."""
        base = Path(os.path.normpath(Path(self.o.root).expanduser().absolute()))
        if not base.is_dir():
            return
        prefix = str(base).rstrip(os.sep) + os.sep
        scanned = {os.path.normpath(f.path) for f in files}
        stored = self.conn.execute(
            "SELECT id, filename, path FROM pgsearch.assets WHERE dataset_id = %s AND path IS NOT NULL"
            " ORDER BY filename",
            (self.dataset.id,),
        ).fetchall()
        gone = []
        for asset_id, name, path in stored:
            where = os.path.normpath(path)
            if where.startswith(prefix) and where not in scanned and not os.path.lexists(where):
                gone.append((asset_id, name))
        s = self.summary
        s.missing = [name for _, name in gone[:FAILED_LIST_LIMIT]]
        if gone and self.o.prune:
            self.conn.execute(
                "DELETE FROM pgsearch.assets WHERE dataset_id = %s AND id = ANY(%s)",
                (self.dataset.id, [asset_id for asset_id, _ in gone]),
            )
            s.assets_pruned = len(gone)
        else:
            s.assets_missing = len(gone)
        self.conn.commit()

    def finish(self) -> None:
        conn = self.conn
        for space in (self.asset_space, self.shape_space):
            if space is None:
                continue
            row = conn.execute(
                "SELECT indexed FROM pgsearch.embedding_spaces WHERE id = %s", (space.id,)
            ).fetchone()
            if row is not None and not row[0]:
                conn.execute("SELECT pgsearch.build_embedding_index(%s)", (space.id,))
                self.summary.index_built.append(space.table_name)
            conn.commit()
        conn.autocommit = True
        try:
            # VACUUM too: index-only scans (translator/covering.py) skip only the pages the
            # visibility map marks all-visible, and a fresh load marks none.
            conn.execute("VACUUM (ANALYZE) pgsearch.assets, pgsearch.group_members")
            conn.execute("ANALYZE pgsearch.shapes")
            for space in (self.asset_space, self.shape_space):
                if space is not None:
                    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier("pgsearch", space.table_name)))
        finally:
            conn.autocommit = False
        # Other models of this dataset: their new items wait for `pgsearch embed`.
        from pgsearch.loader.embed import pending_counts

        for model in dataset_models(conn, self.dataset.id):
            if model != self.summary.model:
                n = pending_counts(conn, self.dataset.id, model)
                if n:
                    self.summary.pending_other_models[model] = n
        conn.commit()


_EXISTING_ASSETS = sql.SQL(
    "SELECT {}, st.state, st.attempts,"
    "       EXISTS (SELECT 1 FROM pgsearch.asset_embeddings e WHERE e.space_id = %s AND e.asset_id = a.id)"
    "  FROM pgsearch.assets a"
    "  LEFT JOIN pgsearch.asset_embedding_state st ON st.space_id = %s AND st.asset_id = a.id"
    " WHERE a.dataset_id = %s AND a.filename = ANY(%s)"
).format(sql.SQL(", ").join(sql.Identifier("a", c) for c in columns(AssetRow)))

_EXISTING_SHAPES = (
    "SELECT s.id, s.asset_id, l.name, s.kind, s.bbox_x, s.bbox_y, s.bbox_width, s.bbox_height,"
    "       s.geometry, s.area, s.attributes, st.state, st.attempts,"
    "       EXISTS (SELECT 1 FROM pgsearch.shape_embeddings e WHERE e.space_id = %s AND e.shape_id = s.id)"
    "  FROM pgsearch.shapes s JOIN pgsearch.labels l ON l.id = s.label_id"
    "  LEFT JOIN pgsearch.shape_embedding_state st ON st.space_id = %s AND st.shape_id = s.id"
    " WHERE s.asset_id = ANY(%s) ORDER BY s.id"
)


def _with_attributes(row: AssetRow, plan: FilePlan) -> AssetRow:
    """This load's status / groups / metadata on an asset row: status is overwritten, groups
    accumulate, metadata keys merge (the module doc's re-loading rules)."""
    if plan.status:
        row = replace(row, status=plan.status)
    if plan.groups:
        row = replace(row, groups=_unique([*row.groups, *plan.groups]))
    if plan.metadata:
        row = replace(row, metadata={**row.metadata, **plan.metadata})
    return row


def _unique(items: list[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def load_folder(conn: psycopg.Connection, options: LoadOptions) -> LoadSummary:
    """Runs `pgsearch load` on an open connection (not in autocommit); see the module doc. One
    load or embed of a dataset at a time (loader/locks.py): a second one waits for the first."""
    with dataset_writer(conn, options.dataset, "load"):
        return Loader(conn, options).run()
