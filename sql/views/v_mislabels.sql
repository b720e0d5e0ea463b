CREATE OR REPLACE VIEW pgsearch.v_mislabels WITH (security_invoker = true) AS
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
