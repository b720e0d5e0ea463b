-- Reverses covering.sql (migration 0005): the group members table and its triggers, and the
-- status index as schema_v1.sql defines it.
DROP TRIGGER IF EXISTS group_members_insert ON pgsearch.assets;
DROP TRIGGER IF EXISTS group_members_update ON pgsearch.assets;
DROP TRIGGER IF EXISTS group_members_delete ON pgsearch.assets;
DROP TRIGGER IF EXISTS group_members_truncate ON pgsearch.assets;
DROP FUNCTION IF EXISTS pgsearch.assets_group_members(), pgsearch.assets_truncate_group_members(),
    pgsearch.refresh_group_members();
DROP TABLE IF EXISTS pgsearch.group_members;
DROP INDEX pgsearch.assets_dataset_status_idx;
CREATE INDEX assets_dataset_status_idx ON pgsearch.assets (dataset_id, status);
