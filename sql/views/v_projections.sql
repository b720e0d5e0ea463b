CREATE OR REPLACE VIEW pgsearch.v_projections WITH (security_invoker = true) AS
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
COMMENT ON COLUMN pgsearch.v_projections.run_id IS 'Projection run id; a new run per projection computed.';
COMMENT ON COLUMN pgsearch.v_projections.dataset IS 'Name of the dataset.';
COMMENT ON COLUMN pgsearch.v_projections.target IS 'What was projected: asset or shape.';
COMMENT ON COLUMN pgsearch.v_projections.model IS 'Embedding model whose vectors were projected.';
COMMENT ON COLUMN pgsearch.v_projections.method IS 'Projection method, e.g. umap.';
COMMENT ON COLUMN pgsearch.v_projections.params IS 'Parameters of the run (JSON).';
COMMENT ON COLUMN pgsearch.v_projections.run_created_at IS 'When the run was computed.';
COMMENT ON COLUMN pgsearch.v_projections.item_id IS 'Asset id (target asset) or shape id (target shape).';
COMMENT ON COLUMN pgsearch.v_projections.x IS 'x coordinate in the 2-D map.';
COMMENT ON COLUMN pgsearch.v_projections.y IS 'y coordinate in the 2-D map.';
COMMENT ON COLUMN pgsearch.v_projections.cluster IS
    'Cluster id (DBSCAN or HDBSCAN, see params; -1 is noise); NULL when not clustered.';
COMMENT ON COLUMN pgsearch.v_projections.is_latest IS
    'True for the newest run of its dataset and target (the one v_assets shows).';
COMMENT ON COLUMN pgsearch.v_projections.dataset_id IS 'Dataset id.';
COMMENT ON COLUMN pgsearch.v_projections.filename IS 'File name of the asset (of the shape''s asset).';
COMMENT ON COLUMN pgsearch.v_projections.label IS 'Label of the shape; NULL for asset points.';
COMMENT ON COLUMN pgsearch.v_projections.space_id IS 'Embedding space whose vectors were projected.';
