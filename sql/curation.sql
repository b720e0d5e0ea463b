-- Curation I: the neighbour graph of each embedding space, richer projection runs, and the views
-- that show both. Applied by migrations/versions/0006_curation.py; reversed by curation_down.sql.
--
-- The graph is the shared input of the 2-D map and of the curation tools: each item's k nearest
-- neighbours in its space, computed in bulk outside the database (pgsearch/curate/graph.py) and
-- written back with binary COPY. Like the vectors, each space's graph lives in its own partition
-- (neighbors_<space id>), so rebuilding a graph is a DROP TABLE and a COPY into a fresh table, not
-- a DELETE of millions of rows, and dropping a space drops its graph with it.

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

-- Projection runs gain what a user compares runs by.
ALTER TABLE pgsearch.projection_runs
    ADD COLUMN items          bigint,
    ADD COLUMN clusters       integer,
    ADD COLUMN noise_fraction double precision,
    ADD COLUMN seconds        double precision;
CREATE INDEX projection_runs_dataset_target_idx ON pgsearch.projection_runs (dataset_id, target, id);

-- drop_embedding_space as in schema_v1.sql, plus the space's neighbour partition.
CREATE OR REPLACE FUNCTION pgsearch.drop_embedding_space(p_space_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s pgsearch.embedding_spaces;
BEGIN
    SELECT * INTO s FROM pgsearch.embedding_spaces WHERE id = p_space_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS pgsearch.%I', 'neighbors_' || p_space_id);
    EXECUTE format('DROP TABLE IF EXISTS pgsearch.%I', s.table_name);
    DELETE FROM pgsearch.embedding_spaces WHERE id = p_space_id;
END $$;
COMMENT ON FUNCTION pgsearch.drop_embedding_space(bigint) IS
    'Drops one embedding space: its partition of vectors with their index, its neighbour graph, '
    'state and projections.';

-- The map's fields have one name in the query language and in the views: x, y, cluster.
ALTER VIEW pgsearch.v_assets RENAME COLUMN projection_x TO x;
ALTER VIEW pgsearch.v_assets RENAME COLUMN projection_y TO y;
COMMENT ON COLUMN pgsearch.v_assets.x IS
    'x of the asset in the dataset''s latest asset map (pgsearch map); NULL when not in it.';
COMMENT ON COLUMN pgsearch.v_assets.y IS
    'y of the asset in the dataset''s latest asset map (pgsearch map); NULL when not in it.';
COMMENT ON COLUMN pgsearch.v_assets.cluster IS
    'Cluster of the asset in the dataset''s latest asset map (-1: noise); NULL when not in it.';

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
       pp.cluster
  FROM pgsearch.shapes AS s
  JOIN pgsearch.assets AS a ON a.id = s.asset_id
  JOIN pgsearch.labels AS l ON l.id = s.label_id
  JOIN pgsearch.datasets AS d ON d.id = s.dataset_id
  -- The newest shape run per dataset, computed once per query rather than once per shape row.
  LEFT JOIN (SELECT DISTINCT ON (r.dataset_id) r.dataset_id, r.id
               FROM pgsearch.projection_runs AS r
              WHERE r.target = 'shape'
              ORDER BY r.dataset_id, r.id DESC) AS latest_run ON latest_run.dataset_id = s.dataset_id
  LEFT JOIN pgsearch.projection_points AS pp ON pp.run_id = latest_run.id AND pp.item_id = s.id;
COMMENT ON COLUMN pgsearch.v_shapes.x IS
    'x of the shape in the dataset''s latest shape map (pgsearch map --shapes); NULL when not in it.';
COMMENT ON COLUMN pgsearch.v_shapes.y IS
    'y of the shape in the dataset''s latest shape map (pgsearch map --shapes); NULL when not in it.';
COMMENT ON COLUMN pgsearch.v_shapes.cluster IS
    'Cluster of the shape in the dataset''s latest shape map (-1: noise); NULL when not in it.';

-- v_projections as in views.sql, plus the item's filename and label and the run's summary.
CREATE OR REPLACE VIEW pgsearch.v_projections AS
SELECT r.id          AS run_id,
       d.name        AS dataset,
       r.target,
       m.name        AS model,
       r.method,
       r.params,
       r.created_at  AS run_created_at,
       p.item_id,
       p.x,
       p.y,
       p.cluster,
       r.id = latest.id AS is_latest,
       r.dataset_id,
       coalesce(a.filename, sa.filename) AS filename,
       l.name        AS label,
       r.space_id
  FROM pgsearch.projection_runs AS r
  JOIN (SELECT r2.dataset_id, r2.target, max(r2.id) AS id
          FROM pgsearch.projection_runs AS r2
         GROUP BY r2.dataset_id, r2.target) AS latest
    ON latest.dataset_id = r.dataset_id AND latest.target = r.target
  JOIN pgsearch.projection_points AS p ON p.run_id = r.id
  JOIN pgsearch.datasets AS d ON d.id = r.dataset_id
  LEFT JOIN pgsearch.embedding_spaces AS s ON s.id = r.space_id
  LEFT JOIN pgsearch.embedding_models AS m ON m.id = s.model_id
  LEFT JOIN pgsearch.assets AS a ON r.target = 'asset' AND a.id = p.item_id
  LEFT JOIN pgsearch.shapes AS sh ON r.target = 'shape' AND sh.id = p.item_id
  LEFT JOIN pgsearch.assets AS sa ON sa.id = sh.asset_id
  LEFT JOIN pgsearch.labels AS l ON l.id = sh.label_id;
COMMENT ON VIEW pgsearch.v_projections IS
    'One row per point of every 2-D map run (pgsearch map: UMAP coordinates and cluster) of assets '
    'or shapes. Join item_id to v_assets.asset_id or v_shapes.shape_id according to target; for a '
    'scatter plot filter on dataset and is_latest and plot x against y coloured by cluster.';
COMMENT ON COLUMN pgsearch.v_projections.cluster IS
    'Cluster id (DBSCAN or HDBSCAN, see params; -1 is noise); NULL when not clustered.';
COMMENT ON COLUMN pgsearch.v_projections.filename IS 'File name of the asset (of the shape''s asset).';
COMMENT ON COLUMN pgsearch.v_projections.label IS 'Label of the shape; NULL for asset points.';
COMMENT ON COLUMN pgsearch.v_projections.space_id IS 'Embedding space whose vectors were projected.';

CREATE VIEW pgsearch.v_projection_runs AS
SELECT r.id          AS run_id,
       d.name        AS dataset,
       r.target,
       m.name        AS model,
       r.method,
       r.params,
       r.items,
       r.clusters,
       r.noise_fraction,
       r.seconds,
       r.created_at,
       r.id = (SELECT max(r2.id) FROM pgsearch.projection_runs AS r2
                WHERE r2.dataset_id = r.dataset_id AND r2.target = r.target) AS is_latest,
       r.id = (SELECT max(r3.id) FROM pgsearch.projection_runs AS r3
                WHERE r3.space_id = r.space_id) AS is_latest_in_space,
       r.space_id,
       r.dataset_id
  FROM pgsearch.projection_runs AS r
  JOIN pgsearch.datasets AS d ON d.id = r.dataset_id
  LEFT JOIN pgsearch.embedding_spaces AS s ON s.id = r.space_id
  LEFT JOIN pgsearch.embedding_models AS m ON m.id = s.model_id;
COMMENT ON VIEW pgsearch.v_projection_runs IS
    'One row per 2-D map run (pgsearch map): dataset, target, model, parameters and summary.';
COMMENT ON COLUMN pgsearch.v_projection_runs.run_id IS 'Projection run id (pgsearch map --drop RUN).';
COMMENT ON COLUMN pgsearch.v_projection_runs.dataset IS 'Name of the dataset.';
COMMENT ON COLUMN pgsearch.v_projection_runs.target IS 'What was projected: asset or shape.';
COMMENT ON COLUMN pgsearch.v_projection_runs.model IS 'Embedding model whose vectors were projected.';
COMMENT ON COLUMN pgsearch.v_projection_runs.method IS 'Projection method, e.g. umap.';
COMMENT ON COLUMN pgsearch.v_projection_runs.params IS
    'Parameters of the run (JSON): projection, clustering (method, eps, min_samples, ...), sampling.';
COMMENT ON COLUMN pgsearch.v_projection_runs.items IS 'Items (points) in the run.';
COMMENT ON COLUMN pgsearch.v_projection_runs.clusters IS 'Clusters found (noise not counted).';
COMMENT ON COLUMN pgsearch.v_projection_runs.noise_fraction IS 'Share of the points left as noise (cluster -1).';
COMMENT ON COLUMN pgsearch.v_projection_runs.seconds IS 'Wall time of the run, in seconds.';
COMMENT ON COLUMN pgsearch.v_projection_runs.created_at IS 'When the run was computed.';
COMMENT ON COLUMN pgsearch.v_projection_runs.is_latest IS
    'True for the newest run of its dataset and target: the one the query language and v_assets use.';
COMMENT ON COLUMN pgsearch.v_projection_runs.is_latest_in_space IS
    'True for the newest run of its embedding space (dataset, model, target).';
COMMENT ON COLUMN pgsearch.v_projection_runs.space_id IS 'Embedding space id.';
COMMENT ON COLUMN pgsearch.v_projection_runs.dataset_id IS 'Dataset id.';

CREATE VIEW pgsearch.v_neighbors AS
SELECT d.name          AS dataset,
       m.name          AS model,
       sp.target,
       n.item_id,
       coalesce(a.filename, sa.filename) AS filename,
       nb.neighbor_id,
       coalesce(na.filename, nsa.filename) AS neighbor_filename,
       nb.rank::integer AS rank,
       nb.distance,
       l.name          AS label,
       nl.name         AS neighbor_label,
       n.space_id,
       sp.dataset_id
  FROM pgsearch.neighbors AS n
  JOIN pgsearch.embedding_spaces AS sp ON sp.id = n.space_id
  JOIN pgsearch.embedding_models AS m ON m.id = sp.model_id
  JOIN pgsearch.datasets AS d ON d.id = sp.dataset_id
  CROSS JOIN LATERAL unnest(n.neighbor_ids, n.distances) WITH ORDINALITY AS nb(neighbor_id, distance, rank)
  LEFT JOIN pgsearch.assets AS a ON sp.target = 'asset' AND a.id = n.item_id
  LEFT JOIN pgsearch.assets AS na ON sp.target = 'asset' AND na.id = nb.neighbor_id
  LEFT JOIN pgsearch.shapes AS s ON sp.target = 'shape' AND s.id = n.item_id
  LEFT JOIN pgsearch.assets AS sa ON sa.id = s.asset_id
  LEFT JOIN pgsearch.labels AS l ON l.id = s.label_id
  LEFT JOIN pgsearch.shapes AS ns ON sp.target = 'shape' AND ns.id = nb.neighbor_id
  LEFT JOIN pgsearch.assets AS nsa ON nsa.id = ns.asset_id
  LEFT JOIN pgsearch.labels AS nl ON nl.id = ns.label_id;
COMMENT ON VIEW pgsearch.v_neighbors IS
    'The neighbour graph (pgsearch neighbors): one row per (item, neighbour), rank 1 the nearest. '
    'Filter on dataset (and model, target); item_id is an asset id or a shape id per target.';
COMMENT ON COLUMN pgsearch.v_neighbors.dataset IS 'Name of the dataset.';
COMMENT ON COLUMN pgsearch.v_neighbors.model IS 'Embedding model of the space.';
COMMENT ON COLUMN pgsearch.v_neighbors.target IS 'asset or shape.';
COMMENT ON COLUMN pgsearch.v_neighbors.item_id IS 'Asset id (target asset) or shape id (target shape).';
COMMENT ON COLUMN pgsearch.v_neighbors.filename IS 'File name of the item (of the shape''s asset).';
COMMENT ON COLUMN pgsearch.v_neighbors.neighbor_id IS 'Id of the neighbour (same kind as item_id).';
COMMENT ON COLUMN pgsearch.v_neighbors.neighbor_filename IS 'File name of the neighbour.';
COMMENT ON COLUMN pgsearch.v_neighbors.rank IS 'Rank of the neighbour, 1 = nearest.';
COMMENT ON COLUMN pgsearch.v_neighbors.distance IS 'Cosine distance between item and neighbour (0 = same direction).';
COMMENT ON COLUMN pgsearch.v_neighbors.label IS 'Label of the shape; NULL for assets.';
COMMENT ON COLUMN pgsearch.v_neighbors.neighbor_label IS 'Label of the neighbouring shape; NULL for assets.';
COMMENT ON COLUMN pgsearch.v_neighbors.space_id IS 'Embedding space id.';
COMMENT ON COLUMN pgsearch.v_neighbors.dataset_id IS 'Dataset id.';
