-- Rebuilds all of group_members from assets.groups (after writes that went around pgsearch's
-- writers, e.g. plain SQL or a logical replication subscriber). Returns the rows.
CREATE OR REPLACE FUNCTION pgsearch.refresh_group_members() RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    v_rows bigint;
BEGIN
    DELETE FROM pgsearch.group_members;
    INSERT INTO pgsearch.group_members (dataset_id, name, asset_id, sketches)
    SELECT a.dataset_id, g.name, a.id, a.sketches
      FROM pgsearch.assets AS a,
           LATERAL (SELECT DISTINCT x FROM unnest(a.groups) AS x WHERE x IS NOT NULL) AS g(name);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END $$;

COMMENT ON FUNCTION pgsearch.refresh_group_members() IS
    'Rebuilds pgsearch.group_members from assets.groups (after writes that went around pgsearch); '
    'returns the rows written.';
