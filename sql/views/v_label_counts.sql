CREATE OR REPLACE VIEW pgsearch.v_label_counts WITH (security_invoker = true) AS
SELECT d.name               AS dataset,
       a.id                 AS asset_id,
       a.filename,
       c.label,
       c.count::integer     AS count,
       a.dataset_id
  FROM pgsearch.assets AS a
  JOIN pgsearch.datasets AS d ON d.id = a.dataset_id
 CROSS JOIN LATERAL jsonb_each_text(a.label_counts) AS c(label, count);

COMMENT ON VIEW pgsearch.v_label_counts IS
    'Label counts in long form: one row per (asset, label present on it) with the number of shapes. '
    'Labels absent from an asset have no row (count 0).';
COMMENT ON COLUMN pgsearch.v_label_counts.dataset IS 'Name of the dataset.';
COMMENT ON COLUMN pgsearch.v_label_counts.asset_id IS 'Asset id.';
COMMENT ON COLUMN pgsearch.v_label_counts.filename IS 'File name of the asset.';
COMMENT ON COLUMN pgsearch.v_label_counts.label IS 'Label name.';
COMMENT ON COLUMN pgsearch.v_label_counts.count IS 'Number of shapes with this label on the asset (at least 1).';
COMMENT ON COLUMN pgsearch.v_label_counts.dataset_id IS 'Dataset id.';
