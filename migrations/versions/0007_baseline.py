"""Baseline: the tables, columns, indexes and constraints of pgsearch 0.1 (its revisions 0001..0007,
squashed). Views, functions and triggers are not migrations: `pgsearch db upgrade` applies them
from sql/ after the migrations (pgsearch/migrate.py).

It keeps the revision id 0007, so a database made by pgsearch 0.1 (at 0007) is already at this
baseline and goes on with the migrations after it, while an empty database runs it. Per-space
partitions (asset_embeddings_<space id>, neighbors_<space id>, ...) are data: functions create them.

Revision ID: 0007
Revises:
"""

from alembic import op

from pgsearch.migrate import drop_objects, run_sql

revision = "0007"
down_revision = None
branch_labels = None
depends_on = None

# Columns are in the order pgsearch 0.1 left them (ALTER TABLE ... ADD COLUMN appends), so a fresh
# database and an upgraded one dump the same schema.
BASELINE = """
CREATE EXTENSION IF NOT EXISTS vector;

COMMENT ON SCHEMA pgsearch IS
    'pgsearch: computer-vision datasets (assets, shapes, groups, metadata, embeddings). '
    'Start with the v_* views and the similar_* / search_* functions.';

CREATE TABLE pgsearch.datasets (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name <> ''),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pgsearch.assets (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id       bigint NOT NULL REFERENCES pgsearch.datasets (id) ON DELETE CASCADE,
    filename         text NOT NULL CHECK (filename <> ''),
    path             text,
    content_hash     text,
    width            integer CHECK (width > 0),
    height           integer CHECK (height > 0),
    size             bigint CHECK (size >= 0),
    format           text,
    status           text NOT NULL DEFAULT 'none' CHECK (status <> ''),
    groups           text[] NOT NULL DEFAULT '{}',
    metadata         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    -- Kept by the triggers on shapes (sql/triggers/): {label name: shape count}, no zeros.
    label_counts     jsonb NOT NULL DEFAULT '{}',
    annotation_count integer NOT NULL DEFAULT 0,
    -- Why the file could not be decoded; NULL for a good asset.
    load_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- Per embedding space id: the asset vector's sign bits (in 0.1 kept by triggers; since 0009 written by the embedding writer).
    sketches         varbit[],
    UNIQUE (dataset_id, filename)
);
-- Carries each row's id and sketches, so the exact path of a similarity search filtered by status
-- is an index-only scan (see group_members below).
CREATE INDEX assets_dataset_status_idx ON pgsearch.assets (dataset_id, status) INCLUDE (id, sketches);
CREATE INDEX assets_content_hash_idx ON pgsearch.assets (dataset_id, content_hash);
CREATE INDEX assets_groups_idx ON pgsearch.assets USING gin (groups);
CREATE INDEX assets_metadata_idx ON pgsearch.assets USING gin (metadata jsonb_path_ops);
CREATE INDEX assets_label_counts_idx ON pgsearch.assets USING gin (label_counts);

CREATE TABLE pgsearch.labels (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id bigint NOT NULL REFERENCES pgsearch.datasets (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (name <> ''),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dataset_id, name)
);

CREATE TABLE pgsearch.shapes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id  bigint NOT NULL REFERENCES pgsearch.datasets (id) ON DELETE CASCADE,
    asset_id    bigint NOT NULL REFERENCES pgsearch.assets (id) ON DELETE CASCADE,
    label_id    bigint NOT NULL REFERENCES pgsearch.labels (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('bbox', 'polygon', 'mask', 'tag')),
    -- Axis-aligned bounding box in pixels (of the polygon or mask too); NULL for a tag.
    bbox_x      double precision,
    bbox_y      double precision,
    bbox_width  double precision CHECK (bbox_width >= 0),
    bbox_height double precision CHECK (bbox_height >= 0),
    -- polygon: {"points": [[x, y], ...]} or {"polygons": [[[x, y], ...], ...]};
    -- mask: {"rle": {"size": [h, w], "counts": ...}}; bbox and tag: {}.
    geometry    jsonb NOT NULL DEFAULT '{}',
    area        double precision CHECK (area >= 0),
    attributes  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'tag' OR (bbox_x IS NOT NULL AND bbox_y IS NOT NULL
                            AND bbox_width IS NOT NULL AND bbox_height IS NOT NULL))
);
CREATE INDEX shapes_asset_idx ON pgsearch.shapes (asset_id);
CREATE INDEX shapes_dataset_label_idx ON pgsearch.shapes (dataset_id, label_id);

-- Embedding models, e.g. 'openclip:ViT-B-16:datacomp_xl_s13b_b90k', 'timm:vit_small_patch14_dinov2'.
CREATE TABLE pgsearch.embedding_models (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name <> ''),
    dim        integer NOT NULL CHECK (dim BETWEEN 1 AND 4000),
    has_text   boolean NOT NULL DEFAULT false,
    config     jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One embedding space per (dataset, model, target). Each space owns one partition of
-- asset_embeddings or shape_embeddings and that partition's HNSW index, so one client's index
-- never serves another's and dropping a space is a DROP TABLE, not a DELETE.
CREATE TABLE pgsearch.embedding_spaces (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id bigint NOT NULL REFERENCES pgsearch.datasets (id) ON DELETE CASCADE,
    model_id   bigint NOT NULL REFERENCES pgsearch.embedding_models (id) ON DELETE CASCADE,
    target     text NOT NULL CHECK (target IN ('asset', 'shape')),
    dim        integer NOT NULL CHECK (dim BETWEEN 1 AND 4000),
    -- The partition holding this space's vectors, e.g. asset_embeddings_7.
    table_name text NOT NULL UNIQUE,
    indexed    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    sketch_center halfvec,
    UNIQUE (dataset_id, model_id, target)
);

-- halfvec: 1 KB a 512-d vector, stored inline instead of TOASTed, half the index, same recall.
-- The column has no dimension on the parent; each partition's HNSW index casts to its space's.
-- No foreign key on space_id: a partition exists only for its space and is dropped with it, and
-- a second key check per row costs the bulk COPY a third of its rate. The primary key leads with
-- the item id, which serves the joins to assets/shapes and the cascades from them.
CREATE TABLE pgsearch.asset_embeddings (
    space_id  bigint NOT NULL,
    asset_id  bigint NOT NULL REFERENCES pgsearch.assets (id) ON DELETE CASCADE,
    embedding halfvec NOT NULL,
    PRIMARY KEY (asset_id, space_id)
) PARTITION BY LIST (space_id);

CREATE TABLE pgsearch.shape_embeddings (
    space_id  bigint NOT NULL,
    shape_id  bigint NOT NULL REFERENCES pgsearch.shapes (id) ON DELETE CASCADE,
    embedding halfvec NOT NULL,
    PRIMARY KEY (shape_id, space_id)
) PARTITION BY LIST (space_id);

-- Per-item embedding state. An item with no row here and no vector is pending too (it may have
-- been inserted with plain SQL); 'failed' keeps the reason and how often it was tried.
CREATE TABLE pgsearch.asset_embedding_state (
    space_id   bigint NOT NULL REFERENCES pgsearch.embedding_spaces (id) ON DELETE CASCADE,
    asset_id   bigint NOT NULL REFERENCES pgsearch.assets (id) ON DELETE CASCADE,
    state      text NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    reason     text,
    attempts   integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (space_id, asset_id)
);
CREATE INDEX asset_embedding_state_asset_idx ON pgsearch.asset_embedding_state (asset_id);

CREATE TABLE pgsearch.shape_embedding_state (
    space_id   bigint NOT NULL REFERENCES pgsearch.embedding_spaces (id) ON DELETE CASCADE,
    shape_id   bigint NOT NULL REFERENCES pgsearch.shapes (id) ON DELETE CASCADE,
    state      text NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    reason     text,
    attempts   integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (space_id, shape_id)
);
CREATE INDEX shape_embedding_state_shape_idx ON pgsearch.shape_embedding_state (shape_id);

-- 2-D projections (UMAP) and clusters (DBSCAN) of one space's vectors.
CREATE TABLE pgsearch.projection_runs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id bigint NOT NULL REFERENCES pgsearch.datasets (id) ON DELETE CASCADE,
    space_id   bigint REFERENCES pgsearch.embedding_spaces (id) ON DELETE CASCADE,
    target     text NOT NULL CHECK (target IN ('asset', 'shape')),
    method     text NOT NULL,
    params     jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    -- What a user compares runs by.
    items          bigint,
    clusters       integer,
    noise_fraction double precision,
    seconds        double precision
);
CREATE INDEX projection_runs_dataset_target_idx ON pgsearch.projection_runs (dataset_id, target, id);

-- item_id is an asset id or a shape id, per the run's target.
CREATE TABLE pgsearch.projection_points (
    run_id  bigint NOT NULL REFERENCES pgsearch.projection_runs (id) ON DELETE CASCADE,
    item_id bigint NOT NULL,
    x       double precision NOT NULL,
    y       double precision NOT NULL,
    cluster integer,
    PRIMARY KEY (run_id, item_id)
);

COMMENT ON COLUMN pgsearch.assets.sketches IS
    'Per embedding space id: sign bits of the asset vector minus the space''s sketch_center. '
    'Kept by triggers on asset_embeddings; used to pre-rank rows under selective filters.';
COMMENT ON COLUMN pgsearch.embedding_spaces.sketch_center IS
    'Mean of the first vectors written to the space (asset spaces): the origin of assets.sketches.';

-- One row per (asset, group) of assets.groups with the asset's sketches, behind a covering primary
-- key: the exact path of a similarity search filtered by one group needs the id and the sketch of
-- every member, and an index-only scan of a few hundred consecutive pages hands them over where
-- the asset rows cost a random heap page each. groups is a text[] served by GIN, which carries no
-- extra columns, hence the table. Index-only scans skip the heap only on pages the visibility map
-- marks all-visible: the loader and `pgsearch index add` VACUUM what they wrote.
CREATE TABLE pgsearch.group_members (
    dataset_id bigint NOT NULL,
    name       text   NOT NULL,
    asset_id   bigint NOT NULL,
    sketches   varbit[],
    PRIMARY KEY (dataset_id, name, asset_id) INCLUDE (sketches)
);
COMMENT ON TABLE pgsearch.group_members IS
    'One row per (asset, group) of assets.groups, with a copy of the asset''s sketches: the exact '
    'path of a similarity search filtered by one group reads them from the primary key alone. '
    'Kept by triggers on assets (pgsearch.refresh_group_members() repairs writes that bypassed '
    'them); never written directly.';
COMMENT ON COLUMN pgsearch.group_members.dataset_id IS 'The asset''s dataset.';
COMMENT ON COLUMN pgsearch.group_members.name IS 'A group the asset is in.';
COMMENT ON COLUMN pgsearch.group_members.asset_id IS 'The asset (pgsearch.assets.id).';
COMMENT ON COLUMN pgsearch.group_members.sketches IS 'A copy of pgsearch.assets.sketches.';

-- The neighbour graph, the shared input of the 2-D map and of the curation tools: each item's k
-- nearest neighbours in its space, computed in bulk outside the database (pgsearch/curate/graph.py)
-- and written back with binary COPY. Like the vectors, each space's graph lives in its own
-- partition (neighbors_<space id>), so rebuilding a graph is a DROP TABLE and a COPY into a fresh
-- table, not a DELETE of millions of rows, and dropping a space drops its graph with it.
CREATE TABLE pgsearch.neighbor_graphs (
    space_id   bigint PRIMARY KEY REFERENCES pgsearch.embedding_spaces (id) ON DELETE CASCADE,
    k          integer NOT NULL CHECK (k BETWEEN 1 AND 1000),
    method     text NOT NULL,
    params     jsonb NOT NULL DEFAULT '{}',
    -- Items in the graph when it was last built or refreshed, and how long the last build took.
    items      bigint NOT NULL DEFAULT 0,
    seconds    double precision,
    built_at   timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pgsearch.neighbor_graphs IS
    'One k-nearest-neighbour graph per embedding space (pgsearch neighbors): its k, method and size.';

-- One row per item: its neighbours nearest first, as parallel arrays (one row per item instead of
-- k rows keeps the COPY and the table k times smaller; v_neighbors unnests them). computed_at says
-- when the row was written: an item whose row is older than its last change is stale.
CREATE TABLE pgsearch.neighbors (
    space_id     bigint NOT NULL,
    item_id      bigint NOT NULL,
    neighbor_ids bigint[] NOT NULL,
    distances    real[] NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (space_id, item_id),
    CHECK (cardinality(neighbor_ids) = cardinality(distances))
) PARTITION BY LIST (space_id);
COMMENT ON TABLE pgsearch.neighbors IS
    'Each item''s nearest neighbours in its embedding space (asset or shape ids, cosine distances, '
    'nearest first); one partition per space, neighbors_<space id>.';

-- Curation results: per-item results of the curation tools, each written whole by the tool that
-- computes it, one partition per embedding space (as the vectors and the neighbour graph are).
-- One table per tool rather than one wide table of scores: a tool replaces its own results for a
-- space as a fresh partition filled by binary COPY (seconds at 1,000,000 items) instead of
-- updating a column in a million shared rows, and no tool's rewrite touches another's rows.
--
--   pgsearch outliers   -> uniqueness_scores_<space>  (every item of the space)
--   pgsearch mislabels  -> mislabel_scores_<space>    (every labelled item of the space)
--   pgsearch duplicates -> duplicate_members_<space>  (only items that have a duplicate)
--
-- curation_runs records each run (tool, parameters, size, time): the query language (fields
-- uniqueness, mislabel_score, suggested_label, duplicate_group) and the views (the same columns at
-- the end of v_assets and v_shapes; v_curation_runs, v_duplicate_groups, v_mislabels) read the
-- results of the latest run per (dataset, target, tool), and a run older than its items says stale.

CREATE TABLE pgsearch.curation_runs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id bigint NOT NULL REFERENCES pgsearch.datasets (id) ON DELETE CASCADE,
    space_id   bigint NOT NULL REFERENCES pgsearch.embedding_spaces (id) ON DELETE CASCADE,
    target     text NOT NULL CHECK (target IN ('asset', 'shape')),
    tool       text NOT NULL CHECK (tool IN ('duplicates', 'outliers', 'mislabels', 'curate')),
    params     jsonb NOT NULL DEFAULT '{}',
    -- Items scored, and items flagged at the run's threshold.
    items      bigint,
    flagged    bigint,
    seconds    double precision,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX curation_runs_dataset_idx ON pgsearch.curation_runs (dataset_id, target, tool, id);
COMMENT ON TABLE pgsearch.curation_runs IS
    'One row per run of a curation tool (pgsearch duplicates / outliers / mislabels / curate).';

-- uniqueness: 0 (typical: its neighbours are as close as most items'') .. 1 (the most isolated);
-- knn_distance: the mean cosine distance to its k nearest neighbours that the score ranks.
CREATE TABLE pgsearch.uniqueness_scores (
    space_id     bigint NOT NULL,
    item_id      bigint NOT NULL,
    uniqueness   real NOT NULL,
    knn_distance real NOT NULL,
    cluster_size integer,
    PRIMARY KEY (space_id, item_id)
) PARTITION BY LIST (space_id);
COMMENT ON TABLE pgsearch.uniqueness_scores IS
    'pgsearch outliers: how isolated each item is in its embedding space; one partition per space.';

CREATE TABLE pgsearch.mislabel_scores (
    space_id        bigint NOT NULL,
    item_id         bigint NOT NULL,
    label           text NOT NULL,
    mislabel_score  real NOT NULL,
    suggested_label text,
    PRIMARY KEY (space_id, item_id)
) PARTITION BY LIST (space_id);
COMMENT ON TABLE pgsearch.mislabel_scores IS
    'pgsearch mislabels: the chance each item''s label is wrong, from its neighbours'' labels, and '
    'the label they suggest; one partition per space.';

-- duplicate_group: the id of the group's representative (the item kept by --keep); the
-- representative is a member of its own group. kind: exact (same content hash) or near.
CREATE TABLE pgsearch.duplicate_members (
    space_id        bigint NOT NULL,
    item_id         bigint NOT NULL,
    duplicate_group bigint NOT NULL,
    representative  boolean NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('exact', 'near')),
    distance        real NOT NULL,
    PRIMARY KEY (space_id, item_id)
) PARTITION BY LIST (space_id);
COMMENT ON TABLE pgsearch.duplicate_members IS
    'pgsearch duplicates: items with an exact or near duplicate, grouped; one partition per space.';
"""

# Every table above; a partitioned parent takes its partitions with it, assets the generated
# columns `pgsearch index add` made. No CASCADE: a user's table with a foreign key to one of these
# stops the downgrade with PostgreSQL's message instead of losing its constraint.
TABLES = (
    "duplicate_members",
    "mislabel_scores",
    "uniqueness_scores",
    "curation_runs",
    "neighbors",
    "neighbor_graphs",
    "group_members",
    "projection_points",
    "projection_runs",
    "asset_embedding_state",
    "shape_embedding_state",
    "asset_embeddings",
    "shape_embeddings",
    "embedding_spaces",
    "embedding_models",
    "shapes",
    "labels",
    "assets",
    "datasets",
)


def upgrade() -> None:
    run_sql(op.get_bind().connection.driver_connection, BASELINE)


def downgrade() -> None:
    from psycopg import sql

    conn = op.get_bind().connection.driver_connection
    drop_objects(conn)
    # sql_objects goes too: it records objects of a schema that is no longer there.
    conn.execute(
        sql.SQL("DROP TABLE IF EXISTS {}").format(
            sql.SQL(", ").join(sql.Identifier("pgsearch", name) for name in (*TABLES, "sql_objects"))
        )
    )
