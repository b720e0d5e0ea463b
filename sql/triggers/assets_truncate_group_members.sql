-- A TRUNCATE of assets fires no row or transition-table trigger: empty group_members with it.
CREATE OR REPLACE FUNCTION pgsearch.assets_truncate_group_members() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE pgsearch.group_members;
    RETURN NULL;
END $$;

COMMENT ON FUNCTION pgsearch.assets_truncate_group_members() IS
    'Trigger function of group_members_truncate: empties pgsearch.group_members when assets is truncated.';

CREATE OR REPLACE TRIGGER group_members_truncate AFTER TRUNCATE ON pgsearch.assets
    FOR EACH STATEMENT EXECUTE FUNCTION pgsearch.assets_truncate_group_members();
