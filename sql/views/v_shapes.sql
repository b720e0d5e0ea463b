CREATE OR REPLACE VIEW pgsearch.v_shapes WITH (security_invoker = true) AS
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

COMMENT ON VIEW pgsearch.v_shapes IS
    'One row per shape (annotation: box, polygon, mask or tag) with its label and its asset''s file.';
COMMENT ON COLUMN pgsearch.v_shapes.shape_id IS 'Shape id (pgsearch.shapes.id).';
COMMENT ON COLUMN pgsearch.v_shapes.dataset IS 'Name of the dataset the shape belongs to.';
COMMENT ON COLUMN pgsearch.v_shapes.asset_id IS 'Id of the asset (image) the shape is drawn on.';
COMMENT ON COLUMN pgsearch.v_shapes.filename IS 'File name of the asset the shape is drawn on.';
COMMENT ON COLUMN pgsearch.v_shapes.path IS 'Source path or URI of the asset''s image.';
COMMENT ON COLUMN pgsearch.v_shapes.label IS 'Label (class) name.';
COMMENT ON COLUMN pgsearch.v_shapes.kind IS 'Shape kind: bbox, polygon, mask or tag.';
COMMENT ON COLUMN pgsearch.v_shapes.bbox_x IS 'Left edge of the bounding box in pixels; NULL for a tag.';
COMMENT ON COLUMN pgsearch.v_shapes.bbox_y IS 'Top edge of the bounding box in pixels; NULL for a tag.';
COMMENT ON COLUMN pgsearch.v_shapes.bbox_width IS 'Bounding box width in pixels; NULL for a tag.';
COMMENT ON COLUMN pgsearch.v_shapes.bbox_height IS 'Bounding box height in pixels; NULL for a tag.';
COMMENT ON COLUMN pgsearch.v_shapes.area IS 'Area in square pixels (of the polygon or mask, else of the box).';
COMMENT ON COLUMN pgsearch.v_shapes.attributes IS 'Free-form shape attributes (JSON object), e.g. occluded.';
COMMENT ON COLUMN pgsearch.v_shapes.geometry IS
    'Exact geometry: {"points": ...} for a polygon, {"rle": ...} for a mask, {} for a box or tag.';
COMMENT ON COLUMN pgsearch.v_shapes.asset_status IS 'Annotation status of the shape''s asset.';
COMMENT ON COLUMN pgsearch.v_shapes.created_at IS 'When the shape was loaded.';
COMMENT ON COLUMN pgsearch.v_shapes.dataset_id IS 'Dataset id (pgsearch.datasets.id).';
COMMENT ON COLUMN pgsearch.v_shapes.x IS
    'x of the shape in the dataset''s latest shape map (pgsearch map --shapes); NULL when not in it.';
COMMENT ON COLUMN pgsearch.v_shapes.y IS
    'y of the shape in the dataset''s latest shape map (pgsearch map --shapes); NULL when not in it.';
COMMENT ON COLUMN pgsearch.v_shapes.cluster IS
    'Cluster of the shape in the dataset''s latest shape map (-1: noise); NULL when not in it.';
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
