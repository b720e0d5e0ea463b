-- Reverses curation.sql.
DROP VIEW pgsearch.v_neighbors;
DROP VIEW pgsearch.v_projection_runs;
DO $$
DECLARE
    v_table text;
BEGIN
    FOR v_table IN SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
                    WHERE i.inhparent = 'pgsearch.neighbors'::regclass LOOP
        EXECUTE format('DROP TABLE pgsearch.%I', v_table);
    END LOOP;
END $$;
DROP TABLE pgsearch.neighbors;
DROP TABLE pgsearch.neighbor_graphs;
DROP VIEW pgsearch.v_projections;
CREATE VIEW pgsearch.v_projections AS
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
       r.dataset_id
  FROM pgsearch.projection_runs AS r
  JOIN (SELECT r2.dataset_id, r2.target, max(r2.id) AS id
          FROM pgsearch.projection_runs AS r2
         GROUP BY r2.dataset_id, r2.target) AS latest
    ON latest.dataset_id = r.dataset_id AND latest.target = r.target
  JOIN pgsearch.projection_points AS p ON p.run_id = r.id
  JOIN pgsearch.datasets AS d ON d.id = r.dataset_id
  LEFT JOIN pgsearch.embedding_spaces AS s ON s.id = r.space_id
  LEFT JOIN pgsearch.embedding_models AS m ON m.id = s.model_id;
DROP VIEW pgsearch.v_shapes;
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
       s.dataset_id
  FROM pgsearch.shapes AS s
  JOIN pgsearch.assets AS a ON a.id = s.asset_id
  JOIN pgsearch.labels AS l ON l.id = s.label_id
  JOIN pgsearch.datasets AS d ON d.id = s.dataset_id;
ALTER VIEW pgsearch.v_assets RENAME COLUMN x TO projection_x;
ALTER VIEW pgsearch.v_assets RENAME COLUMN y TO projection_y;
DROP INDEX pgsearch.projection_runs_dataset_target_idx;
ALTER TABLE pgsearch.projection_runs
    DROP COLUMN items, DROP COLUMN clusters, DROP COLUMN noise_fraction, DROP COLUMN seconds;
CREATE OR REPLACE FUNCTION pgsearch.drop_embedding_space(p_space_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s pgsearch.embedding_spaces;
BEGIN
    SELECT * INTO s FROM pgsearch.embedding_spaces WHERE id = p_space_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS pgsearch.%I', s.table_name);
    DELETE FROM pgsearch.embedding_spaces WHERE id = p_space_id;
END $$;
COMMENT ON FUNCTION pgsearch.drop_embedding_space(bigint) IS
    'Drops one embedding space: its partition of vectors with their index, state and projections.';
