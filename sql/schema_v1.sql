-- pgsearch schema v1: datasets, assets, labels, shapes, embeddings, projections.
-- Applied by migrations/versions/0001_schema_v1.py inside the `pgsearch` schema.

CREATE EXTENSION IF NOT EXISTS vector;

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
    -- Kept by the triggers on shapes below, never by writers: {label name: shape count}, no zeros.
    label_counts     jsonb NOT NULL DEFAULT '{}',
    annotation_count integer NOT NULL DEFAULT 0,
    -- Why the file could not be decoded; NULL for a good asset.
    load_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dataset_id, filename)
);
CREATE INDEX assets_dataset_status_idx ON pgsearch.assets (dataset_id, status);
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

-- Per-asset label counts. Statement-level triggers with transition tables recompute the counts
-- of the touched assets from shapes, so a COPY of 10,000 shapes costs one UPDATE, not 10,000.
CREATE FUNCTION pgsearch.refresh_label_counts(asset_ids bigint[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE pgsearch.assets AS a
       SET label_counts = coalesce(c.counts, '{}'::jsonb),
           annotation_count = coalesce(c.total, 0)
      FROM (SELECT ids.id, agg.counts, agg.total
              FROM (SELECT DISTINCT unnest(asset_ids) AS id) AS ids
              LEFT JOIN LATERAL (
                  SELECT jsonb_object_agg(l.name, per.n) AS counts, sum(per.n)::integer AS total
                    FROM (SELECT s.label_id, count(*) AS n
                            FROM pgsearch.shapes AS s
                           WHERE s.asset_id = ids.id
                           GROUP BY s.label_id) AS per
                    JOIN pgsearch.labels AS l ON l.id = per.label_id
              ) AS agg ON true) AS c
     WHERE a.id = c.id
$$;

CREATE FUNCTION pgsearch.shapes_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgsearch.refresh_label_counts(ARRAY(SELECT asset_id FROM new_rows));
    RETURN NULL;
END $$;

CREATE FUNCTION pgsearch.shapes_after_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgsearch.refresh_label_counts(ARRAY(SELECT asset_id FROM old_rows));
    RETURN NULL;
END $$;

CREATE FUNCTION pgsearch.shapes_after_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgsearch.refresh_label_counts(
        ARRAY(SELECT asset_id FROM new_rows UNION SELECT asset_id FROM old_rows));
    RETURN NULL;
END $$;

CREATE TRIGGER shapes_label_counts_insert AFTER INSERT ON pgsearch.shapes
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION pgsearch.shapes_after_insert();
CREATE TRIGGER shapes_label_counts_delete AFTER DELETE ON pgsearch.shapes
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION pgsearch.shapes_after_delete();
CREATE TRIGGER shapes_label_counts_update AFTER UPDATE ON pgsearch.shapes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION pgsearch.shapes_after_update();

-- Counts are keyed by label name, so a rename must rewrite the assets that carry the label.
CREATE FUNCTION pgsearch.labels_after_rename() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgsearch.refresh_label_counts(
        ARRAY(SELECT DISTINCT s.asset_id FROM pgsearch.shapes AS s
               WHERE s.label_id IN (SELECT id FROM new_rows)));
    RETURN NULL;
END $$;
CREATE TRIGGER labels_rename AFTER UPDATE ON pgsearch.labels
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION pgsearch.labels_after_rename();

CREATE FUNCTION pgsearch.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER assets_touch BEFORE UPDATE ON pgsearch.assets
    FOR EACH ROW EXECUTE FUNCTION pgsearch.touch_updated_at();
CREATE TRIGGER datasets_touch BEFORE UPDATE ON pgsearch.datasets
    FOR EACH ROW EXECUTE FUNCTION pgsearch.touch_updated_at();

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

-- Creates (or returns) the space for (dataset, model, target) and its partition.
CREATE FUNCTION pgsearch.ensure_embedding_space(p_dataset_id bigint, p_model_id bigint, p_target text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id   bigint;
    v_dim  integer;
    v_name text;
BEGIN
    SELECT id INTO v_id FROM pgsearch.embedding_spaces
     WHERE dataset_id = p_dataset_id AND model_id = p_model_id AND target = p_target;
    IF v_id IS NOT NULL THEN
        RETURN v_id;
    END IF;
    SELECT dim INTO STRICT v_dim FROM pgsearch.embedding_models WHERE id = p_model_id;
    INSERT INTO pgsearch.embedding_spaces (dataset_id, model_id, target, dim, table_name)
    VALUES (p_dataset_id, p_model_id, p_target, v_dim, 'pending')
    RETURNING id INTO v_id;
    v_name := p_target || '_embeddings_' || v_id;
    UPDATE pgsearch.embedding_spaces SET table_name = v_name WHERE id = v_id;
    EXECUTE format('CREATE TABLE pgsearch.%I PARTITION OF pgsearch.%I FOR VALUES IN (%s)',
                   v_name, p_target || '_embeddings', v_id);
    RETURN v_id;
END $$;

-- Builds the space's HNSW index (cosine, on the vector cast to the space's dimension).
-- Called after a bulk load; later loads keep it up to date by plain inserts.
CREATE FUNCTION pgsearch.build_embedding_index(p_space_id bigint, p_m integer DEFAULT 16,
                                               p_ef_construction integer DEFAULT 128)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s pgsearch.embedding_spaces;
BEGIN
    SELECT * INTO STRICT s FROM pgsearch.embedding_spaces WHERE id = p_space_id;
    IF s.indexed THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE INDEX %I ON pgsearch.%I USING hnsw ((embedding::halfvec(%s)) halfvec_cosine_ops) '
                   'WITH (m = %s, ef_construction = %s)',
                   s.table_name || '_hnsw', s.table_name, s.dim, p_m, p_ef_construction);
    UPDATE pgsearch.embedding_spaces SET indexed = true WHERE id = p_space_id;
END $$;

-- Drops a space: its partition (vectors and index at once), its state rows and projections.
CREATE FUNCTION pgsearch.drop_embedding_space(p_space_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s pgsearch.embedding_spaces;
BEGIN
    SELECT * INTO s FROM pgsearch.embedding_spaces WHERE id = p_space_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS pgsearch.%I', s.table_name);
    DELETE FROM pgsearch.embedding_spaces WHERE id = p_space_id;
END $$;

-- 2-D projections (UMAP) and clusters (DBSCAN) of one space's vectors.
CREATE TABLE pgsearch.projection_runs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id bigint NOT NULL REFERENCES pgsearch.datasets (id) ON DELETE CASCADE,
    space_id   bigint REFERENCES pgsearch.embedding_spaces (id) ON DELETE CASCADE,
    target     text NOT NULL CHECK (target IN ('asset', 'shape')),
    method     text NOT NULL,
    params     jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- item_id is an asset id or a shape id, per the run's target.
CREATE TABLE pgsearch.projection_points (
    run_id  bigint NOT NULL REFERENCES pgsearch.projection_runs (id) ON DELETE CASCADE,
    item_id bigint NOT NULL,
    x       double precision NOT NULL,
    y       double precision NOT NULL,
    cluster integer,
    PRIMARY KEY (run_id, item_id)
);

-- Drops a dataset with its embedding partitions (a DELETE alone would leave them, empty).
CREATE FUNCTION pgsearch.drop_dataset(p_name text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_dataset bigint;
    v_space   bigint;
BEGIN
    SELECT id INTO v_dataset FROM pgsearch.datasets WHERE name = p_name;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    FOR v_space IN SELECT id FROM pgsearch.embedding_spaces WHERE dataset_id = v_dataset LOOP
        PERFORM pgsearch.drop_embedding_space(v_space);
    END LOOP;
    DELETE FROM pgsearch.datasets WHERE id = v_dataset;
    RETURN true;
END $$;
