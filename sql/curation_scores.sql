-- Curation II: per-item results of the curation tools, each written whole by the tool that
-- computes it, one partition per embedding space (as the vectors and the neighbour graph are).
-- Applied by migrations/versions/0007_curation_scores.py; reversed by curation_scores_down.sql.
--
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

-- drop_embedding_space as in curation.sql, plus the tools' partitions of the space.
CREATE OR REPLACE FUNCTION pgsearch.drop_embedding_space(p_space_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s pgsearch.embedding_spaces;
    v_prefix text;
BEGIN
    SELECT * INTO s FROM pgsearch.embedding_spaces WHERE id = p_space_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    FOREACH v_prefix IN ARRAY ARRAY['neighbors_', 'uniqueness_', 'mislabels_', 'duplicates_'] LOOP
        EXECUTE format('DROP TABLE IF EXISTS pgsearch.%I', v_prefix || p_space_id);
    END LOOP;
    EXECUTE format('DROP TABLE IF EXISTS pgsearch.%I', s.table_name);
    DELETE FROM pgsearch.embedding_spaces WHERE id = p_space_id;
END $$;
COMMENT ON FUNCTION pgsearch.drop_embedding_space(bigint) IS
    'Drops one embedding space: its partition of vectors with their index, its neighbour graph, '
    'curation results, state and projections.';

-- ---------------------------------------------------------------------------------------------
-- Views. The latest run of a tool per (dataset, target) is the one with the highest id; its space's
-- partition of the tool's table holds its results (a tool replaces a space's partition whole).
-- Like latest_run for the map, each is computed once per query, not once per row.

-- v_assets as in views.sql (with curation.sql's x, y), plus the latest curation results.
CREATE OR REPLACE VIEW pgsearch.v_assets AS
SELECT a.id               AS asset_id,
       d.name             AS dataset,
       a.filename,
       a.path,
       a.width,
       a.height,
       a.size             AS size_bytes,
       a.format,
       a.status,
       a.groups,
       a.metadata,
       a.label_counts,
       a.annotation_count,
       a.load_error,
       a.content_hash,
       a.created_at,
       a.updated_at,
       pp.x,
       pp.y,
       pp.cluster,
       a.dataset_id,
       u.uniqueness,
       ml.mislabel_score,
       ml.suggested_label,
       dm.duplicate_group
  FROM pgsearch.assets AS a
  JOIN pgsearch.datasets AS d ON d.id = a.dataset_id
  -- The newest asset run per dataset, computed once per query rather than once per asset row.
  LEFT JOIN (SELECT DISTINCT ON (r.dataset_id) r.dataset_id, r.id
               FROM pgsearch.projection_runs AS r
              WHERE r.target = 'asset'
              ORDER BY r.dataset_id, r.id DESC) AS latest_run ON latest_run.dataset_id = a.dataset_id
  LEFT JOIN pgsearch.projection_points AS pp ON pp.run_id = latest_run.id AND pp.item_id = a.id
  LEFT JOIN (SELECT DISTINCT ON (r.dataset_id) r.dataset_id, r.space_id
               FROM pgsearch.curation_runs AS r
              WHERE r.target = 'asset' AND r.tool = 'outliers'
              ORDER BY r.dataset_id, r.id DESC) AS latest_outliers ON latest_outliers.dataset_id = a.dataset_id
  LEFT JOIN pgsearch.uniqueness_scores AS u ON u.space_id = latest_outliers.space_id AND u.item_id = a.id
  LEFT JOIN (SELECT DISTINCT ON (r.dataset_id) r.dataset_id, r.space_id
               FROM pgsearch.curation_runs AS r
              WHERE r.target = 'asset' AND r.tool = 'mislabels'
              ORDER BY r.dataset_id, r.id DESC) AS latest_mislabels ON latest_mislabels.dataset_id = a.dataset_id
  LEFT JOIN pgsearch.mislabel_scores AS ml ON ml.space_id = latest_mislabels.space_id AND ml.item_id = a.id
  LEFT JOIN (SELECT DISTINCT ON (r.dataset_id) r.dataset_id, r.space_id
               FROM pgsearch.curation_runs AS r
              WHERE r.target = 'asset' AND r.tool = 'duplicates'
              ORDER BY r.dataset_id, r.id DESC) AS latest_duplicates ON latest_duplicates.dataset_id = a.dataset_id
  LEFT JOIN pgsearch.duplicate_members AS dm ON dm.space_id = latest_duplicates.space_id AND dm.item_id = a.id;
COMMENT ON COLUMN pgsearch.v_assets.uniqueness IS
    'How isolated the asset is among its neighbours, 0 (typical) .. 1 (the most isolated), from the '
    'dataset''s latest pgsearch outliers run; NULL when not scored or never run.';
COMMENT ON COLUMN pgsearch.v_assets.mislabel_score IS
    'Chance the asset''s label is wrong (0 .. 1), from the dataset''s latest pgsearch mislabels run; '
    'NULL when not scored or never run.';
COMMENT ON COLUMN pgsearch.v_assets.suggested_label IS
    'The label the asset''s neighbours suggest, from the latest pgsearch mislabels run; NULL when none.';
COMMENT ON COLUMN pgsearch.v_assets.duplicate_group IS
    'Asset id of the representative of the asset''s duplicate group, from the dataset''s latest '
    'pgsearch duplicates run (see v_duplicate_groups); NULL when the asset has no duplicate.';

-- v_shapes as in curation.sql, plus the latest curation results of the shapes.
CREATE OR REPLACE VIEW pgsearch.v_shapes AS
SELECT s.id          AS shape_id,
       d.name        AS dataset,
       s.asset_id,
       a.filename,
       a.path,
       l.name        AS label,
       s.kind,
       s.bbox_x,
       s.bbox_y,
       s.bbox_width,
       s.bbox_height,
       s.area,
       s.attributes,
       s.geometry,
       a.status      AS asset_status,
       s.created_at,
       s.dataset_id,
       pp.x,
       pp.y,
       pp.cluster,
       u.uniqueness,
       ml.mislabel_score,
       ml.suggested_label,
       dm.duplicate_group
  FROM pgsearch.shapes AS s
  JOIN pgsearch.assets AS a ON a.id = s.asset_id
  JOIN pgsearch.labels AS l ON l.id = s.label_id
  JOIN pgsearch.datasets AS d ON d.id = s.dataset_id
  -- The newest shape run per dataset, computed once per query rather than once per shape row.
  LEFT JOIN (SELECT DISTINCT ON (r.dataset_id) r.dataset_id, r.id
               FROM pgsearch.projection_runs AS r
              WHERE r.target = 'shape'
              ORDER BY r.dataset_id, r.id DESC) AS latest_run ON latest_run.dataset_id = s.dataset_id
  LEFT JOIN pgsearch.projection_points AS pp ON pp.run_id = latest_run.id AND pp.item_id = s.id
  LEFT JOIN (SELECT DISTINCT ON (r.dataset_id) r.dataset_id, r.space_id
               FROM pgsearch.curation_runs AS r
              WHERE r.target = 'shape' AND r.tool = 'outliers'
              ORDER BY r.dataset_id, r.id DESC) AS latest_outliers ON latest_outliers.dataset_id = s.dataset_id
  LEFT JOIN pgsearch.uniqueness_scores AS u ON u.space_id = latest_outliers.space_id AND u.item_id = s.id
  LEFT JOIN (SELECT DISTINCT ON (r.dataset_id) r.dataset_id, r.space_id
               FROM pgsearch.curation_runs AS r
              WHERE r.target = 'shape' AND r.tool = 'mislabels'
              ORDER BY r.dataset_id, r.id DESC) AS latest_mislabels ON latest_mislabels.dataset_id = s.dataset_id
  LEFT JOIN pgsearch.mislabel_scores AS ml ON ml.space_id = latest_mislabels.space_id AND ml.item_id = s.id
  LEFT JOIN (SELECT DISTINCT ON (r.dataset_id) r.dataset_id, r.space_id
               FROM pgsearch.curation_runs AS r
              WHERE r.target = 'shape' AND r.tool = 'duplicates'
              ORDER BY r.dataset_id, r.id DESC) AS latest_duplicates ON latest_duplicates.dataset_id = s.dataset_id
  LEFT JOIN pgsearch.duplicate_members AS dm ON dm.space_id = latest_duplicates.space_id AND dm.item_id = s.id;
COMMENT ON COLUMN pgsearch.v_shapes.uniqueness IS
    'How isolated the shape is among its neighbours, 0 (typical) .. 1 (the most isolated), from the '
    'dataset''s latest pgsearch outliers --shapes run; NULL when not scored or never run.';
COMMENT ON COLUMN pgsearch.v_shapes.mislabel_score IS
    'Chance the shape''s label is wrong (0 .. 1), from the dataset''s latest pgsearch mislabels --shapes '
    'run; NULL when not scored or never run.';
COMMENT ON COLUMN pgsearch.v_shapes.suggested_label IS
    'The label the shape''s neighbours suggest, from the latest pgsearch mislabels --shapes run; NULL '
    'when none.';
COMMENT ON COLUMN pgsearch.v_shapes.duplicate_group IS
    'Shape id of the representative of the shape''s duplicate group, from the dataset''s latest '
    'pgsearch duplicates --shapes run (see v_duplicate_groups); NULL when the shape has no duplicate.';

CREATE VIEW pgsearch.v_curation_runs AS
SELECT r.id          AS run_id,
       d.name        AS dataset,
       r.target,
       m.name        AS model,
       r.tool,
       r.params,
       r.items,
       r.flagged,
       r.seconds,
       r.created_at,
       r.id = (SELECT max(r2.id) FROM pgsearch.curation_runs AS r2
                WHERE r2.dataset_id = r.dataset_id AND r2.target = r.target AND r2.tool = r.tool) AS is_latest,
       r.space_id,
       r.dataset_id
  FROM pgsearch.curation_runs AS r
  JOIN pgsearch.datasets AS d ON d.id = r.dataset_id
  JOIN pgsearch.embedding_spaces AS s ON s.id = r.space_id
  JOIN pgsearch.embedding_models AS m ON m.id = s.model_id;
COMMENT ON VIEW pgsearch.v_curation_runs IS
    'One row per run of a curation tool (pgsearch duplicates / outliers / mislabels / curate): '
    'dataset, target, model, parameters and summary. The latest run per dataset, target and tool '
    'is the one the query language and the views read.';
COMMENT ON COLUMN pgsearch.v_curation_runs.run_id IS 'Curation run id (pgsearch.curation_runs.id).';
COMMENT ON COLUMN pgsearch.v_curation_runs.dataset IS 'Name of the dataset.';
COMMENT ON COLUMN pgsearch.v_curation_runs.target IS 'What was scored: asset or shape.';
COMMENT ON COLUMN pgsearch.v_curation_runs.model IS 'Embedding model whose neighbours the tool used.';
COMMENT ON COLUMN pgsearch.v_curation_runs.tool IS 'The tool: duplicates, outliers, mislabels or curate.';
COMMENT ON COLUMN pgsearch.v_curation_runs.params IS 'Parameters of the run (JSON): thresholds, k, ...';
COMMENT ON COLUMN pgsearch.v_curation_runs.items IS 'Items scored.';
COMMENT ON COLUMN pgsearch.v_curation_runs.flagged IS 'Items flagged at the run''s threshold.';
COMMENT ON COLUMN pgsearch.v_curation_runs.seconds IS 'Wall time of the run, in seconds.';
COMMENT ON COLUMN pgsearch.v_curation_runs.created_at IS 'When the run was recorded.';
COMMENT ON COLUMN pgsearch.v_curation_runs.is_latest IS
    'True for the newest run of its dataset, target and tool: the one the query language, v_assets, '
    'v_shapes, v_duplicate_groups and v_mislabels read.';
COMMENT ON COLUMN pgsearch.v_curation_runs.space_id IS 'Embedding space id.';
COMMENT ON COLUMN pgsearch.v_curation_runs.dataset_id IS 'Dataset id.';

-- group_size is a window over (dataset, target, group): every column it partitions by is one a BI
-- filter names (dataset, dataset_id, target), so such a filter is applied before the window runs.
CREATE VIEW pgsearch.v_duplicate_groups AS
SELECT d.name          AS dataset,
       r.target,
       m.duplicate_group,
       m.item_id,
       coalesce(a.filename, sa.filename) AS filename,
       m.representative,
       m.kind,
       m.distance,
       (count(*) OVER (PARTITION BY r.dataset_id, d.name, r.target, m.duplicate_group))::integer AS group_size,
       r.id            AS run_id,
       r.space_id,
       r.dataset_id
  FROM (SELECT DISTINCT ON (r2.dataset_id, r2.target) r2.id, r2.dataset_id, r2.target, r2.space_id
          FROM pgsearch.curation_runs AS r2
         WHERE r2.tool = 'duplicates'
         ORDER BY r2.dataset_id, r2.target, r2.id DESC) AS r
  JOIN pgsearch.duplicate_members AS m ON m.space_id = r.space_id
  JOIN pgsearch.datasets AS d ON d.id = r.dataset_id
  LEFT JOIN pgsearch.assets AS a ON r.target = 'asset' AND a.id = m.item_id
  LEFT JOIN pgsearch.shapes AS sh ON r.target = 'shape' AND sh.id = m.item_id
  LEFT JOIN pgsearch.assets AS sa ON sa.id = sh.asset_id;
COMMENT ON VIEW pgsearch.v_duplicate_groups IS
    'Duplicates found by the latest pgsearch duplicates run per dataset and target: one row per '
    'member of a group (the representative included). Filter on dataset, order by duplicate_group.';
COMMENT ON COLUMN pgsearch.v_duplicate_groups.dataset IS 'Name of the dataset.';
COMMENT ON COLUMN pgsearch.v_duplicate_groups.target IS 'asset or shape.';
COMMENT ON COLUMN pgsearch.v_duplicate_groups.duplicate_group IS
    'The group: the item id of its representative (the item pgsearch duplicates --keep keeps).';
COMMENT ON COLUMN pgsearch.v_duplicate_groups.item_id IS 'Asset id (target asset) or shape id (target shape).';
COMMENT ON COLUMN pgsearch.v_duplicate_groups.filename IS 'File name of the item (of the shape''s asset).';
COMMENT ON COLUMN pgsearch.v_duplicate_groups.representative IS 'True for the group''s representative.';
COMMENT ON COLUMN pgsearch.v_duplicate_groups.kind IS 'exact (same file content) or near (close embeddings).';
COMMENT ON COLUMN pgsearch.v_duplicate_groups.distance IS
    'Cosine distance between the item and its group''s representative, as pgsearch duplicates measured it.';
COMMENT ON COLUMN pgsearch.v_duplicate_groups.group_size IS 'Members of the group, the representative included.';
COMMENT ON COLUMN pgsearch.v_duplicate_groups.run_id IS 'The duplicates run (v_curation_runs.run_id).';
COMMENT ON COLUMN pgsearch.v_duplicate_groups.space_id IS 'Embedding space id.';
COMMENT ON COLUMN pgsearch.v_duplicate_groups.dataset_id IS 'Dataset id.';

CREATE VIEW pgsearch.v_mislabels AS
SELECT d.name          AS dataset,
       r.target,
       ml.item_id,
       coalesce(a.filename, sa.filename) AS filename,
       ml.label,
       ml.suggested_label,
       ml.mislabel_score,
       r.id            AS run_id,
       r.space_id,
       r.dataset_id
  FROM (SELECT DISTINCT ON (r2.dataset_id, r2.target) r2.id, r2.dataset_id, r2.target, r2.space_id
          FROM pgsearch.curation_runs AS r2
         WHERE r2.tool = 'mislabels'
         ORDER BY r2.dataset_id, r2.target, r2.id DESC) AS r
  JOIN pgsearch.mislabel_scores AS ml ON ml.space_id = r.space_id
  JOIN pgsearch.datasets AS d ON d.id = r.dataset_id
  LEFT JOIN pgsearch.assets AS a ON r.target = 'asset' AND a.id = ml.item_id
  LEFT JOIN pgsearch.shapes AS sh ON r.target = 'shape' AND sh.id = ml.item_id
  LEFT JOIN pgsearch.assets AS sa ON sa.id = sh.asset_id;
COMMENT ON VIEW pgsearch.v_mislabels IS
    'Label checks of the latest pgsearch mislabels run per dataset and target: one row per scored '
    'item. Filter on dataset, order by mislabel_score DESC for the likeliest mistakes first.';
COMMENT ON COLUMN pgsearch.v_mislabels.dataset IS 'Name of the dataset.';
COMMENT ON COLUMN pgsearch.v_mislabels.target IS 'asset or shape.';
COMMENT ON COLUMN pgsearch.v_mislabels.item_id IS 'Asset id (target asset) or shape id (target shape).';
COMMENT ON COLUMN pgsearch.v_mislabels.filename IS 'File name of the item (of the shape''s asset).';
COMMENT ON COLUMN pgsearch.v_mislabels.label IS 'The item''s label when it was scored.';
COMMENT ON COLUMN pgsearch.v_mislabels.suggested_label IS
    'The label the item''s neighbours suggest; NULL when they suggest none.';
COMMENT ON COLUMN pgsearch.v_mislabels.mislabel_score IS 'Chance the label is wrong, 0 .. 1.';
COMMENT ON COLUMN pgsearch.v_mislabels.run_id IS 'The mislabels run (v_curation_runs.run_id).';
COMMENT ON COLUMN pgsearch.v_mislabels.space_id IS 'Embedding space id.';
COMMENT ON COLUMN pgsearch.v_mislabels.dataset_id IS 'Dataset id.';
