-- Reverses curation_scores.sql.
DROP VIEW pgsearch.v_mislabels;
DROP VIEW pgsearch.v_duplicate_groups;
DROP VIEW pgsearch.v_curation_runs;

-- v_assets and v_shapes back to their 0006 columns. A view loses columns only by DROP and CREATE,
-- which also loses its comments and grants (a reader's SELECT): both are kept aside and put back.
CREATE TEMP TABLE curation_scores_view_comments ON COMMIT DROP AS
SELECT c.relname, a.attname, coalesce(col_description(c.oid, a.attnum), '') AS comment
  FROM pg_class AS c
  JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.oid IN ('pgsearch.v_assets'::regclass, 'pgsearch.v_shapes'::regclass)
UNION ALL
SELECT c.relname, NULL, coalesce(obj_description(c.oid, 'pg_class'), '')
  FROM pg_class AS c
 WHERE c.oid IN ('pgsearch.v_assets'::regclass, 'pgsearch.v_shapes'::regclass);
CREATE TEMP TABLE curation_scores_view_grants ON COMMIT DROP AS
SELECT c.relname, g.grantee, g.privilege_type, g.is_grantable
  FROM pg_class AS c
 CROSS JOIN aclexplode(c.relacl) AS g
 WHERE c.oid IN ('pgsearch.v_assets'::regclass, 'pgsearch.v_shapes'::regclass)
   AND g.grantee <> c.relowner;
DROP VIEW pgsearch.v_assets;
DROP VIEW pgsearch.v_shapes;

-- As views.sql created it, with curation.sql's column names x and y.
CREATE VIEW pgsearch.v_assets AS
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
       a.dataset_id
  FROM pgsearch.assets AS a
  JOIN pgsearch.datasets AS d ON d.id = a.dataset_id
  -- The newest asset run per dataset, computed once per query rather than once per asset row.
  LEFT JOIN (SELECT DISTINCT ON (r.dataset_id) r.dataset_id, r.id
               FROM pgsearch.projection_runs AS r
              WHERE r.target = 'asset'
              ORDER BY r.dataset_id, r.id DESC) AS latest_run ON latest_run.dataset_id = a.dataset_id
  LEFT JOIN pgsearch.projection_points AS pp ON pp.run_id = latest_run.id AND pp.item_id = a.id;

-- As curation.sql created it.
CREATE VIEW pgsearch.v_shapes AS
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

DO $$
DECLARE
    c record;
BEGIN
    -- The comments of the columns both versions have, and of the views (curation_scores.sql
    -- changed none of them).
    FOR c IN SELECT k.relname, k.attname, k.comment FROM curation_scores_view_comments AS k
              WHERE k.attname IS NULL
                 OR EXISTS (SELECT 1 FROM pg_attribute AS a
                             WHERE a.attrelid = format('pgsearch.%I', k.relname)::regclass
                               AND a.attname = k.attname AND a.attnum > 0 AND NOT a.attisdropped) LOOP
        IF c.attname IS NULL THEN
            EXECUTE format('COMMENT ON VIEW pgsearch.%I IS %L', c.relname, nullif(c.comment, ''));
        ELSE
            EXECUTE format('COMMENT ON COLUMN pgsearch.%I.%I IS %L', c.relname, c.attname, nullif(c.comment, ''));
        END IF;
    END LOOP;
    FOR c IN SELECT * FROM curation_scores_view_grants LOOP
        EXECUTE format('GRANT %s ON pgsearch.%I TO %s%s', c.privilege_type, c.relname,
                       CASE WHEN c.grantee = 0 THEN 'PUBLIC' ELSE c.grantee::regrole::text END,
                       CASE WHEN c.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END $$;
DROP TABLE curation_scores_view_comments;
DROP TABLE curation_scores_view_grants;

DO $$
DECLARE
    v_parent text;
    v_table  text;
BEGIN
    FOREACH v_parent IN ARRAY ARRAY['uniqueness_scores', 'mislabel_scores', 'duplicate_members'] LOOP
        FOR v_table IN SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
                        WHERE i.inhparent = format('pgsearch.%I', v_parent)::regclass LOOP
            EXECUTE format('DROP TABLE pgsearch.%I', v_table);
        END LOOP;
    END LOOP;
END $$;
DROP TABLE pgsearch.duplicate_members;
DROP TABLE pgsearch.mislabel_scores;
DROP TABLE pgsearch.uniqueness_scores;
DROP TABLE pgsearch.curation_runs;
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
