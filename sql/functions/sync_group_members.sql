-- group_members: one row per (asset, group) of assets.groups, with a copy of the asset's
-- sketches, so the exact path of a similarity search filtered by one group reads the members'
-- ids and sketches from its primary key alone (translator/templates/statements.sql,
-- group_candidates). assets.groups is the fact; group_members is derived from it and written by
-- whatever changes groups (the loader, group edits), through this function, in the same
-- transaction. No trigger. A writer going around pgsearch calls it for the assets it changed (or
-- refresh_group_members(), which rebuilds the whole table).
CREATE OR REPLACE FUNCTION pgsearch.sync_group_members(p_dataset_id bigint, p_asset_ids bigint[])
RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    v_rows bigint;
    v_more bigint;
BEGIN
    -- Memberships the assets no longer have (or of assets that are gone).
    DELETE FROM pgsearch.group_members AS m
     WHERE m.dataset_id = p_dataset_id AND m.asset_id = ANY (p_asset_ids)
       AND NOT EXISTS (SELECT 1 FROM pgsearch.assets AS a
                        WHERE a.id = m.asset_id AND a.dataset_id = m.dataset_id AND m.name = ANY (a.groups));
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    -- Memberships they gained, and sketches that differ.
    INSERT INTO pgsearch.group_members AS m (dataset_id, name, asset_id, sketches)
    SELECT a.dataset_id, g.name, a.id, a.sketches
      FROM pgsearch.assets AS a,
           LATERAL (SELECT DISTINCT x FROM unnest(a.groups) AS x WHERE x IS NOT NULL) AS g(name)
     WHERE a.dataset_id = p_dataset_id AND a.id = ANY (p_asset_ids)
    ON CONFLICT (dataset_id, name, asset_id) DO UPDATE SET sketches = excluded.sketches
     WHERE m.sketches IS DISTINCT FROM excluded.sketches;
    GET DIAGNOSTICS v_more = ROW_COUNT;
    RETURN v_rows + v_more;
END $$;

COMMENT ON FUNCTION pgsearch.sync_group_members(bigint, bigint[]) IS
    'Makes pgsearch.group_members of the given assets of one dataset equal to their assets.groups '
    '(with their sketches). Called by pgsearch''s writers; a writer going around pgsearch calls it '
    'for the assets it changed. Returns the memberships deleted, added or rewritten.';
