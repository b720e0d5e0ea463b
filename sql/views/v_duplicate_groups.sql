CREATE OR REPLACE VIEW pgsearch.v_duplicate_groups WITH (security_invoker = true) AS
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
