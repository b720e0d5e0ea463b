CREATE OR REPLACE VIEW pgsearch.v_curation_runs WITH (security_invoker = true) AS
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
