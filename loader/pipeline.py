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

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from pgsearch.datasets import ensure_dataset, get_dataset
from pgsearch.errors import NotFound
from pgsearch.loader import writer
from pgsearch.loader.annotations import AnnotationSet, FileIndex, ShapeSpec, parse_annotations
from pgsearch.loader.crops import CONTEXT_PADDING
from pgsearch.loader.engine import Embedded, Engine
from pgsearch.loader.errors import LoadInputError
from pgsearch.loader.external import ExternalVectors, read_embeddings
from pgsearch.loader.images import DEFAULT_MAX_PIXELS
from pgsearch.loader.metadata import MetadataRow, parse_metadata
from pgsearch.loader.models import DEFAULT_MODEL, Embedder, get_embedder, parse_spec
from pgsearch.loader.scan import ScannedFile, scan
from pgsearch.loader.spaces import Space, dataset_models, dataset_spaces, ensure_model, ensure_space
from pgsearch.loader.work import WorkItem, WorkResult

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
            },
            "shapes": {
                "inserted": self.shapes_inserted,
                "deleted": self.shapes_deleted,
                "failed": self.shapes_failed,
                "skipped": self.shapes_skipped,
            },
            "embeddings": {"assets": self.vectors_assets, "shapes": self.vectors_shapes},
            "failed": self.failed,
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
    id: int
    content_hash: str | None
    path: str | None
    width: int | None
    height: int | None
    size: int | None
    format: str | None
    status: str
    groups: list[str]
    metadata: dict[str, Any]
    load_error: str | None
    asset_state: str | None  # 'done' or 'failed' in this load's asset space; None: still to embed
    attempts: int
    shapes: list[StoredShape]

    def row(self, dataset_id: int, filename: str) -> list[Any]:
        return [
            self.id,
            dataset_id,
            filename,
            self.path,
            self.content_hash,
            self.width,
            self.height,
            self.size,
            self.format,
            self.status,
            self.groups,
            self.metadata,
            self.load_error,
        ]


@dataclass
class FilePlan:
    file: ScannedFile
    existing: Existing | None
    desired: list[ShapeSpec] | None
    status: str | None
    groups: list[str]
    metadata: dict[str, Any]
    asset_id: int = 0


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
        files = scan(o.root)
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
            dataset = get_dataset(self.conn, o.dataset)
            models = dataset_models(self.conn, dataset.id)
        except NotFound:
            models = []
        finally:
            self.conn.commit()
        return models[0] if models else DEFAULT_MODEL

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
        bar = _progress(len(files), self.o.progress, model_name)
        streaming_started = time.perf_counter()
        try:
            for done in engine.run(self.chunks(files, annotations, metadata)):
                self.write(done)
                bar.update(len(done.tag))
        finally:
            bar.close()
        self.summary.streaming_seconds = time.perf_counter() - streaming_started
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
                model_id = ensure_model(conn, model_name, dim, has_text, config)
                self.asset_space = ensure_space(conn, self.dataset.id, model_id, "asset")
                if self.o.embed_shapes and self.external is None and self._has_geometric_shapes(annotations):
                    self.shape_space = ensure_space(conn, self.dataset.id, model_id, "shape")
            spaces = dataset_spaces(conn, self.dataset.id)
            self.all_asset_spaces = [(s.id, s.table_name) for s in spaces if s.target == "asset"]
            self.all_shape_spaces = [(s.id, s.table_name) for s in spaces if s.target == "shape"]

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
                cost = 1 + (
                    len(
                        plan.desired
                        if plan.desired is not None
                        else (plan.existing.shapes if plan.existing else [])
                    )
                    if self.shape_space
                    else 0
                )
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
        conn = self.conn
        aspace = self.asset_space.id if self.asset_space else None
        sspace = self.shape_space.id if self.shape_space else None
        rows = conn.execute(
            "SELECT a.id, a.filename, a.content_hash, a.path, a.width, a.height, a.size, a.format, a.status,"
            "       a.groups, a.metadata, a.load_error, st.state, st.attempts,"
            "       EXISTS (SELECT 1 FROM pgsearch.asset_embeddings e WHERE e.space_id = %s AND e.asset_id = a.id)"
            "  FROM pgsearch.assets a"
            "  LEFT JOIN pgsearch.asset_embedding_state st ON st.space_id = %s AND st.asset_id = a.id"
            " WHERE a.dataset_id = %s AND a.filename = ANY(%s)",
            (aspace, aspace, self.dataset.id, filenames),
        ).fetchall()
        out: dict[str, Existing] = {}
        by_id: dict[int, Existing] = {}
        for (
            aid,
            filename,
            chash,
            path,
            w,
            h,
            size,
            fmt,
            status,
            groups,
            meta,
            err,
            state,
            attempts,
            has_vec,
        ) in rows:
            e = Existing(
                aid,
                chash,
                path,
                w,
                h,
                size,
                fmt,
                status,
                list(groups),
                dict(meta),
                err,
                _state(state, attempts, has_vec),
                attempts or 0,
                [],
            )
            out[filename] = by_id[aid] = e
        if by_id:
            shape_rows = conn.execute(
                "SELECT s.id, s.asset_id, l.name, s.kind, s.bbox_x, s.bbox_y, s.bbox_width, s.bbox_height,"
                "       s.geometry, s.area, s.attributes, st.state, st.attempts,"
                "       EXISTS (SELECT 1 FROM pgsearch.shape_embeddings e WHERE e.space_id = %s AND e.shape_id = s.id)"
                "  FROM pgsearch.shapes s JOIN pgsearch.labels l ON l.id = s.label_id"
                "  LEFT JOIN pgsearch.shape_embedding_state st ON st.space_id = %s AND st.shape_id = s.id"
                " WHERE s.asset_id = ANY(%s) ORDER BY s.id",
                (sspace, sspace, list(by_id)),
            ).fetchall()
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
            from pgsearch.loader.work import same_shapes, settle

            shapes_same = plan.desired is None or same_shapes(
                settle(plan.desired, e.width, e.height)[0], [s.spec for s in e.shapes]
            )
            asset_done = self.asset_space is None or e.asset_state is not None
            shapes_done = self.shape_space is None or all(
                s.state is not None for s in e.shapes if s.spec.kind != "tag"
            )
            skip = shapes_same and asset_done and shapes_done
        return WorkItem(
            path=plan.file.path,
            known_hash=e.content_hash if e else None,
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
        """One batch, one transaction."""
        conn = self.conn
        s = self.summary
        new_rows: list[list[Any]] = []
        updated_rows: list[list[Any]] = []
        changed_asset_ids: list[int] = []
        shapes_to_delete: list[int] = []
        kept_shapes_reset: list[int] = []
        new_shapes: list[tuple[int, int, ShapeSpec]] = []  # (plan index, crop index, spec) -> id later
        asset_vecs: list[tuple[int, np.ndarray]] = []
        asset_states: list[tuple[int, str, str | None, int]] = []
        shape_jobs: list[
            tuple[int, int, int | None, int]
        ] = []  # (plan idx, crop idx, shape id or None, attempts)

        with conn.transaction():
            fresh_ids = iter(
                writer.reserve_ids(conn, "assets", sum(1 for p in done.tag if p.existing is None))
            )
            for i, (plan, result) in enumerate(zip(done.tag, done.results, strict=True)):
                e = plan.existing
                facts = result.facts
                if e is None:
                    aid = next(fresh_ids)
                    mode = "new"
                    s.assets_new += 1
                elif result.unchanged or (
                    facts.content_hash is not None and facts.content_hash == e.content_hash
                ):
                    aid, mode = e.id, "same"
                else:
                    aid, mode = e.id, "changed"
                    s.assets_updated += 1
                    changed_asset_ids.append(aid)
                plan.asset_id = aid

                # the asset row
                if mode == "same":
                    assert e is not None
                    row = e.row(self.dataset.id, plan.file.filename)
                    row[3] = plan.file.path
                    _apply_attributes(row, plan)
                    if row != e.row(self.dataset.id, plan.file.filename):
                        updated_rows.append(row)
                        s.assets_updated += 1
                    else:
                        s.assets_unchanged += 1
                else:
                    row = [
                        aid,
                        self.dataset.id,
                        plan.file.filename,
                        plan.file.path,
                        facts.content_hash,
                        facts.width,
                        facts.height,
                        facts.size,
                        facts.format,
                        e.status if e else "none",
                        list(e.groups) if e else [],
                        dict(e.metadata) if e else {},
                        facts.error,
                    ]
                    _apply_attributes(row, plan)
                    (new_rows if mode == "new" else updated_rows).append(row)
                if facts.error and mode != "same":
                    s.assets_failed += 1
                    if len(s.failed) < FAILED_LIST_LIMIT:
                        s.failed.append({"filename": plan.file.filename, "reason": facts.error})
                if result.unchanged:
                    continue

                # shapes
                s.shapes_skipped += result.dropped_shapes
                stored = e.shapes if e else []
                if result.new_shapes is not None:
                    shapes_to_delete.extend(sh.id for sh in stored)
                    s.shapes_deleted += len(stored)
                    for j, spec in enumerate(result.new_shapes):
                        new_shapes.append((i, j, spec))
                elif mode == "changed":
                    kept_shapes_reset.extend(sh.id for sh in stored)

                # embeddings of this load's model
                if self.asset_space is not None:
                    prior = e.asset_state if (e is not None and mode == "same") else None
                    if prior is None:
                        attempts = (e.attempts if e is not None and mode == "same" else 0) + 1
                        vec, reason = self._asset_vector(plan, result, done.asset_vectors[i])
                        if vec is not None:
                            asset_vecs.append((aid, vec))
                            asset_states.append((aid, "done", None, attempts))
                        else:
                            asset_states.append((aid, "failed", reason, attempts))
                if self.shape_space is not None:
                    if result.new_shapes is not None:
                        for j, spec in enumerate(result.new_shapes):
                            if spec.kind != "tag":
                                shape_jobs.append((i, j, None, 1))
                    else:
                        for j, sh in enumerate(stored):
                            if sh.spec.kind == "tag":
                                continue
                            if mode == "changed" or sh.state is None:
                                attempts = 1 if mode == "changed" else sh.attempts + 1
                                shape_jobs.append((i, j, sh.id, attempts))

            # rows
            writer.insert_assets(conn, new_rows)
            writer.update_assets(conn, updated_rows)
            for space_id, table in self.all_asset_spaces:
                writer.delete_vectors(conn, "asset", table, space_id, changed_asset_ids)
                writer.delete_states(conn, "asset", space_id, changed_asset_ids)
            for space_id, table in self.all_shape_spaces:
                writer.delete_vectors(conn, "shape", table, space_id, kept_shapes_reset)
                writer.delete_states(conn, "shape", space_id, kept_shapes_reset)
            writer.delete_shapes(conn, shapes_to_delete, self.all_shape_spaces)
            shape_ids: dict[tuple[int, int], int] = {}
            if new_shapes:
                ids = writer.reserve_ids(conn, "shapes", len(new_shapes))
                shape_rows = []
                for sid, (i, j, spec) in zip(ids, new_shapes, strict=True):
                    shape_ids[(i, j)] = sid
                    plan = done.tag[i]
                    bbox = spec.bbox or (None, None, None, None)
                    shape_rows.append(
                        [
                            sid,
                            self.dataset.id,
                            plan.asset_id,
                            self.labels[spec.label],
                            spec.kind,
                            *bbox,
                            spec.geometry,
                            spec.area,
                            spec.attributes,
                        ]
                    )
                writer.insert_shapes(conn, shape_rows)
                s.shapes_inserted += len(shape_rows)

            # vectors and states
            if self.asset_space is not None:
                a = self.asset_space
                ids_ = [aid for aid, _ in asset_vecs]
                writer.delete_vectors(conn, "asset", a.table_name, a.id, [r[0] for r in asset_states])
                if asset_vecs:
                    writer.copy_vectors(
                        conn, "asset", a.table_name, a.id, ids_, np.stack([v for _, v in asset_vecs])
                    )
                writer.write_states(conn, "asset", a.id, asset_states)
                s.vectors_assets += len(asset_vecs)
            if self.shape_space is not None and shape_jobs:
                sp = self.shape_space
                vec_ids: list[int] = []
                vecs: list[np.ndarray] = []
                states: list[tuple[int, str, str | None, int]] = []
                for i, j, sid, attempts in shape_jobs:
                    shape_id = sid if sid is not None else shape_ids[(i, j)]
                    vec = done.crop_vectors[i][j] if j < len(done.crop_vectors[i]) else None
                    if vec is not None and np.all(np.isfinite(vec)):
                        vec_ids.append(shape_id)
                        vecs.append(vec)
                        states.append((shape_id, "done", None, attempts))
                    else:
                        reason = _shape_failure(done.results[i], j)
                        states.append((shape_id, "failed", reason, attempts))
                        s.shapes_failed += 1
                writer.delete_vectors(conn, "shape", sp.table_name, sp.id, [r[0] for r in states])
                if vecs:
                    writer.copy_vectors(conn, "shape", sp.table_name, sp.id, vec_ids, np.stack(vecs))
                writer.write_states(conn, "shape", sp.id, states)
                s.vectors_shapes += len(vecs)

    def _asset_vector(
        self, plan: FilePlan, result: WorkResult, vec: np.ndarray | None
    ) -> tuple[np.ndarray | None, str | None]:
        if result.facts.error:
            return None, result.facts.error
        if self.external is not None:
            return self.external.vector(plan.file.filename)
        if vec is None:
            return None, "no embedding computed"
        if not np.all(np.isfinite(vec)) or not np.any(vec):
            return None, "the model returned a zero or non-finite vector"
        return vec, None

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


def _shape_failure(result: WorkResult, j: int) -> str:
    if result.facts.error:
        return f"image could not be decoded: {result.facts.error}"
    reason = result.crops[j] if j < len(result.crops) else None
    return reason if isinstance(reason, str) else "no embedding computed"


def _apply_attributes(row: list[Any], plan: FilePlan) -> None:
    """status / groups / metadata of this load onto an asset row (in ASSET_COLUMNS order)."""
    if plan.status:
        row[9] = plan.status
    if plan.groups:
        row[10] = _unique([*row[10], *plan.groups])
    if plan.metadata:
        row[11] = {**row[11], **plan.metadata}


def _unique(items: list[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool, model: str | None) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="img",
        desc="load" + (f" [{model}]" if model else ""),
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )


def load_folder(conn: psycopg.Connection, options: LoadOptions) -> LoadSummary:
    """Runs `pgsearch load` on an open connection (not in autocommit); see the module doc."""
    return Loader(conn, options).run()
