-- group_members: one row per (asset, group) of assets.groups with a copy of the asset's sketches,
-- kept by these statement triggers on assets (see the table's COMMENT). The members of the rows in
-- new_rows / old_rows are rewritten only for rows whose dataset, groups or sketches changed: most
-- updates of assets (status, label counts) leave them alone. A COPY of 100,000 assets writes their
-- memberships in one INSERT.
CREATE OR REPLACE FUNCTION pgsearch.assets_group_members() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- (new_rows exists only in INSERT and UPDATE triggers, old_rows in UPDATE and DELETE ones.)
    IF TG_OP = 'DELETE' THEN
        DELETE FROM pgsearch.group_members AS m
         USING old_rows AS o
         WHERE m.dataset_id = o.dataset_id AND m.name = ANY (o.groups) AND m.asset_id = o.id;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM pgsearch.group_members AS m
         USING old_rows AS o
         WHERE m.dataset_id = o.dataset_id AND m.name = ANY (o.groups) AND m.asset_id = o.id
           AND NOT EXISTS (SELECT 1 FROM new_rows AS n
                            WHERE n.id = o.id AND n.dataset_id = o.dataset_id
                              AND n.groups = o.groups AND n.sketches IS NOT DISTINCT FROM o.sketches);
        INSERT INTO pgsearch.group_members (dataset_id, name, asset_id, sketches)
        SELECT n.dataset_id, g.name, n.id, n.sketches
          FROM new_rows AS n,
               LATERAL (SELECT DISTINCT x FROM unnest(n.groups) AS x WHERE x IS NOT NULL) AS g(name)
         WHERE NOT EXISTS (SELECT 1 FROM old_rows AS o
                            WHERE o.id = n.id AND o.dataset_id = n.dataset_id
                              AND o.groups = n.groups AND o.sketches IS NOT DISTINCT FROM n.sketches)
        ON CONFLICT (dataset_id, name, asset_id) DO UPDATE SET sketches = excluded.sketches;
        RETURN NULL;
    END IF;
    -- (ON CONFLICT: a row left behind by a write that bypassed the triggers is taken over.)
    INSERT INTO pgsearch.group_members (dataset_id, name, asset_id, sketches)
    SELECT n.dataset_id, g.name, n.id, n.sketches
      FROM new_rows AS n,
           LATERAL (SELECT DISTINCT x FROM unnest(n.groups) AS x WHERE x IS NOT NULL) AS g(name)
    ON CONFLICT (dataset_id, name, asset_id) DO UPDATE SET sketches = excluded.sketches;
    RETURN NULL;
END $$;

COMMENT ON FUNCTION pgsearch.assets_group_members() IS
    'Trigger function of group_members_insert / _update / _delete on assets: keeps pgsearch.group_members.';

CREATE OR REPLACE TRIGGER group_members_insert AFTER INSERT ON pgsearch.assets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION pgsearch.assets_group_members();
CREATE OR REPLACE TRIGGER group_members_update AFTER UPDATE ON pgsearch.assets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION pgsearch.assets_group_members();
CREATE OR REPLACE TRIGGER group_members_delete AFTER DELETE ON pgsearch.assets
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION pgsearch.assets_group_members();
