CREATE OR REPLACE VIEW pgsearch.v_projection_runs WITH (security_invoker = true) AS
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
