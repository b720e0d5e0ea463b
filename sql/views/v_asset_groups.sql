CREATE OR REPLACE VIEW pgsearch.v_asset_groups WITH (security_invoker = true) AS
SELECT d.name      AS dataset,
       a.id        AS asset_id,
       a.filename,
       g.group_name,
       a.dataset_id
  FROM pgsearch.assets AS a
  JOIN pgsearch.datasets AS d ON d.id = a.dataset_id
 CROSS JOIN LATERAL unnest(a.groups) AS g(group_name);

COMMENT ON VIEW pgsearch.v_asset_groups IS
    'Asset groups in long form: one row per (asset, group it is in). Assets in no group have no row.';
COMMENT ON COLUMN pgsearch.v_asset_groups.dataset IS 'Name of the dataset.';
COMMENT ON COLUMN pgsearch.v_asset_groups.asset_id IS 'Asset id.';
COMMENT ON COLUMN pgsearch.v_asset_groups.filename IS 'File name of the asset.';
COMMENT ON COLUMN pgsearch.v_asset_groups.group_name IS 'Group name (tag, split, ...).';
COMMENT ON COLUMN pgsearch.v_asset_groups.dataset_id IS 'Dataset id.';
