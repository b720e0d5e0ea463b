"""group_members rows belong to their asset: a foreign key on (dataset_id, asset_id) that deletes
them with the asset and moves them with it, so no trigger on assets has to.

group_members is derived from assets.groups and written by pgsearch's writers through
pgsearch.sync_group_members() (sql/functions/sync_group_members.sql). What those writers do not
see is an asset deleted or moved by someone else (a dataset dropped with a plain DELETE, a
cascade from datasets): the key takes care of that. It carries the dataset, as every key will
when the tables are distributed by dataset_id (Citus). The (dataset_id, asset_id) index serves
the key's cascades and sync_group_members' lookups by asset.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

from pgsearch.migrate import run_sql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UPGRADE = """
-- Rows a write around the old triggers may have left behind would fail the key.
DELETE FROM pgsearch.group_members AS m
 WHERE NOT EXISTS (SELECT 1 FROM pgsearch.assets AS a WHERE a.id = m.asset_id AND a.dataset_id = m.dataset_id);
ALTER TABLE pgsearch.assets ADD CONSTRAINT assets_dataset_id_id_key UNIQUE (dataset_id, id);
CREATE INDEX group_members_asset_idx ON pgsearch.group_members (dataset_id, asset_id);
ALTER TABLE pgsearch.group_members
    ADD CONSTRAINT group_members_asset_fkey FOREIGN KEY (dataset_id, asset_id)
        REFERENCES pgsearch.assets (dataset_id, id) ON DELETE CASCADE ON UPDATE CASCADE;
COMMENT ON TABLE pgsearch.group_members IS
    'One row per (asset, group) of assets.groups, with a copy of the asset''s sketches: the exact '
    'path of a similarity search filtered by one group reads them from the primary key alone. '
    'Derived from assets.groups; written by pgsearch''s writers through '
    'pgsearch.sync_group_members(dataset_id, asset_ids), which a writer going around pgsearch calls '
    'too (pgsearch.refresh_group_members() rebuilds it all). Rows go and move with their asset.';
COMMENT ON COLUMN pgsearch.group_members.sketches IS
    'A copy of pgsearch.assets.sketches, written with it (pgsearch.write_asset_sketches).';
COMMENT ON COLUMN pgsearch.assets.sketches IS
    'Per embedding space id: sign bits of the asset vector minus the space''s sketch_center. '
    'Written with the vectors by pgsearch''s embedding writer (pgsearch.write_asset_sketches); '
    'used to pre-rank rows under selective filters.';
"""

DOWNGRADE = """
ALTER TABLE pgsearch.group_members DROP CONSTRAINT group_members_asset_fkey;
DROP INDEX pgsearch.group_members_asset_idx;
ALTER TABLE pgsearch.assets DROP CONSTRAINT assets_dataset_id_id_key;
COMMENT ON TABLE pgsearch.group_members IS
    'One row per (asset, group) of assets.groups, with a copy of the asset''s sketches: the exact '
    'path of a similarity search filtered by one group reads them from the primary key alone. '
    'Kept by triggers on assets (pgsearch.refresh_group_members() repairs writes that bypassed '
    'them); never written directly.';
COMMENT ON COLUMN pgsearch.group_members.sketches IS 'A copy of pgsearch.assets.sketches.';
COMMENT ON COLUMN pgsearch.assets.sketches IS
    'Per embedding space id: sign bits of the asset vector minus the space''s sketch_center. '
    'Kept by triggers on asset_embeddings; used to pre-rank rows under selective filters.';
"""


def upgrade() -> None:
    run_sql(op.get_bind().connection.driver_connection, UPGRADE)


def downgrade() -> None:
    run_sql(op.get_bind().connection.driver_connection, DOWNGRADE)
