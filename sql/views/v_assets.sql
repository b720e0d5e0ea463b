CREATE OR REPLACE VIEW pgsearch.v_assets WITH (security_invoker = true) AS
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

COMMENT ON VIEW pgsearch.v_assets IS
    'One row per asset (image) of every dataset, with its annotation summary and its point in the '
    'dataset''s latest asset projection. Filter on dataset.';
COMMENT ON COLUMN pgsearch.v_assets.asset_id IS 'Asset id (pgsearch.assets.id); stable, unique across datasets.';
COMMENT ON COLUMN pgsearch.v_assets.dataset IS 'Name of the dataset the asset belongs to.';
COMMENT ON COLUMN pgsearch.v_assets.filename IS 'File name, unique within the dataset.';
COMMENT ON COLUMN pgsearch.v_assets.path IS 'Source path or URI of the image as loaded.';
COMMENT ON COLUMN pgsearch.v_assets.width IS 'Image width in pixels (NULL when the file could not be decoded).';
COMMENT ON COLUMN pgsearch.v_assets.height IS 'Image height in pixels (NULL when the file could not be decoded).';
COMMENT ON COLUMN pgsearch.v_assets.size_bytes IS 'File size in bytes.';
COMMENT ON COLUMN pgsearch.v_assets.format IS
    'Image format in lower case, as Pillow names it: jpeg, png, webp, tiff, gif, bmp, ...';
COMMENT ON COLUMN pgsearch.v_assets.status IS
    'Annotation status: none, annotated, review, to_fix, completed, or a custom string.';
COMMENT ON COLUMN pgsearch.v_assets.groups IS
    'Groups (tags, splits) the asset is in, as a text array; see v_asset_groups for one row per group.';
COMMENT ON COLUMN pgsearch.v_assets.metadata IS 'Free-form user metadata (JSON object).';
COMMENT ON COLUMN pgsearch.v_assets.label_counts IS
    'Shapes per label on the asset as a JSON object {label: count}; see v_label_counts for long form.';
COMMENT ON COLUMN pgsearch.v_assets.annotation_count IS 'Total number of shapes (annotations) on the asset.';
COMMENT ON COLUMN pgsearch.v_assets.load_error IS 'Why the file could not be decoded; NULL for a good asset.';
COMMENT ON COLUMN pgsearch.v_assets.content_hash IS 'Hash of the file content (finds exact duplicates).';
COMMENT ON COLUMN pgsearch.v_assets.created_at IS 'When the asset was first loaded.';
COMMENT ON COLUMN pgsearch.v_assets.updated_at IS 'When the asset row last changed.';
COMMENT ON COLUMN pgsearch.v_assets.cluster IS
    'Cluster of the asset in the dataset''s latest asset map (-1: noise); NULL when not in it.';
COMMENT ON COLUMN pgsearch.v_assets.dataset_id IS 'Dataset id (pgsearch.datasets.id).';
COMMENT ON COLUMN pgsearch.v_assets.x IS
    'x of the asset in the dataset''s latest asset map (pgsearch map); NULL when not in it.';
COMMENT ON COLUMN pgsearch.v_assets.y IS
    'y of the asset in the dataset''s latest asset map (pgsearch map); NULL when not in it.';
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
