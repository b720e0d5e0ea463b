"""Per-dataset readers: pgsearch.reader_datasets and row-level security on every table that holds
a dataset's rows.

`pgsearch db grant-reader NAME [--dataset D ...]` writes reader_datasets: one row per dataset the
reader may see, or one row with dataset_id NULL for every dataset. A role with no row there is not
a reader and the policies leave it alone; the tables' owner (pgsearch's writer) bypasses them
anyway, since row-level security is enabled and not forced.

Only datasets consults reader_datasets; every other table's policy reads the table it hangs from
(assets -> datasets, asset_embeddings -> embedding_spaces, projection_points -> projection_runs),
whose own policy applies in turn. Policies are kept here, with the tables they belong to, and not
in sql/: they never change shape with a release's views and functions, and a policy that called a
function of sql/ would stop the objects from being dropped and made again.

The per-space partitions of asset_embeddings and shape_embeddings, which the search functions and
the translator name directly, get the same policy as their parent (here for the existing ones,
in pgsearch.ensure_embedding_space for new ones). Other partitions (neighbors_<id>, ...) are read
through their parents only: readers have no grant on them.

Readers made before this revision keep seeing every dataset (below).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

from pgsearch.migrate import run_sql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE pgsearch.reader_datasets (
    role_name  text   NOT NULL,
    -- NULL: every dataset. No foreign key: a dropped dataset's id is never given again (identity),
    -- and a reader whose datasets are all gone still sees nothing rather than everything.
    dataset_id bigint,
    UNIQUE NULLS NOT DISTINCT (role_name, dataset_id)
);
COMMENT ON TABLE pgsearch.reader_datasets IS
    'The datasets each reader role may see (dataset_id NULL: every dataset), written by '
    '`pgsearch db grant-reader`. A role listed here sees only those datasets'' rows, through every '
    'view and function (row-level security); a role not listed is not a reader.';
ALTER TABLE pgsearch.reader_datasets ENABLE ROW LEVEL SECURITY;
-- A role sees the rows of the reader roles it is (or is a member of, e.g. `GRANT reader_a TO
-- alice`): membership must not turn a restricted reader into an unrestricted one.
CREATE POLICY reader_datasets_own ON pgsearch.reader_datasets USING (
    EXISTS (SELECT FROM pg_catalog.pg_roles AS g
             WHERE g.rolname = reader_datasets.role_name AND pg_catalog.pg_has_role(current_user, g.oid, 'MEMBER')));
-- Every policy below reads it (each role its own rows only).
GRANT SELECT ON pgsearch.reader_datasets TO PUBLIC;
ALTER TABLE pgsearch.datasets ENABLE ROW LEVEL SECURITY;
-- (reader_datasets' own policy already keeps a role to the rows of the readers it is.)
CREATE POLICY reader_datasets ON pgsearch.datasets USING (NOT EXISTS (SELECT FROM pgsearch.reader_datasets AS r) OR EXISTS (SELECT FROM pgsearch.reader_datasets AS r WHERE r.dataset_id IS NULL OR r.dataset_id = datasets.id));
ALTER TABLE pgsearch.assets ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.assets USING (dataset_id IN (SELECT d.id FROM pgsearch.datasets AS d));
ALTER TABLE pgsearch.labels ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.labels USING (dataset_id IN (SELECT d.id FROM pgsearch.datasets AS d));
ALTER TABLE pgsearch.shapes ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.shapes USING (dataset_id IN (SELECT d.id FROM pgsearch.datasets AS d));
ALTER TABLE pgsearch.embedding_spaces ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.embedding_spaces USING (dataset_id IN (SELECT d.id FROM pgsearch.datasets AS d));
ALTER TABLE pgsearch.projection_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.projection_runs USING (dataset_id IN (SELECT d.id FROM pgsearch.datasets AS d));
ALTER TABLE pgsearch.group_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.group_members USING (dataset_id IN (SELECT d.id FROM pgsearch.datasets AS d));
ALTER TABLE pgsearch.curation_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.curation_runs USING (dataset_id IN (SELECT d.id FROM pgsearch.datasets AS d));
ALTER TABLE pgsearch.projection_points ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.projection_points USING (run_id IN (SELECT p.id FROM pgsearch.projection_runs AS p));
ALTER TABLE pgsearch.asset_embeddings ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.asset_embeddings USING (space_id IN (SELECT s.id FROM pgsearch.embedding_spaces AS s));
ALTER TABLE pgsearch.shape_embeddings ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.shape_embeddings USING (space_id IN (SELECT s.id FROM pgsearch.embedding_spaces AS s));
ALTER TABLE pgsearch.asset_embedding_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.asset_embedding_state USING (space_id IN (SELECT s.id FROM pgsearch.embedding_spaces AS s));
ALTER TABLE pgsearch.shape_embedding_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.shape_embedding_state USING (space_id IN (SELECT s.id FROM pgsearch.embedding_spaces AS s));
ALTER TABLE pgsearch.neighbor_graphs ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.neighbor_graphs USING (space_id IN (SELECT s.id FROM pgsearch.embedding_spaces AS s));
ALTER TABLE pgsearch.neighbors ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.neighbors USING (space_id IN (SELECT s.id FROM pgsearch.embedding_spaces AS s));
ALTER TABLE pgsearch.uniqueness_scores ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.uniqueness_scores USING (space_id IN (SELECT s.id FROM pgsearch.embedding_spaces AS s));
ALTER TABLE pgsearch.mislabel_scores ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.mislabel_scores USING (space_id IN (SELECT s.id FROM pgsearch.embedding_spaces AS s));
ALTER TABLE pgsearch.duplicate_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_datasets ON pgsearch.duplicate_members USING (space_id IN (SELECT s.id FROM pgsearch.embedding_spaces AS s));

DO $$
DECLARE
    v_table text;
BEGIN
    FOR v_table IN SELECT table_name FROM pgsearch.embedding_spaces ORDER BY id LOOP
        EXECUTE format('ALTER TABLE pgsearch.%I ENABLE ROW LEVEL SECURITY', v_table);
        EXECUTE format('CREATE POLICY reader_datasets ON pgsearch.%I USING (space_id IN (SELECT s.id FROM pgsearch.embedding_spaces AS s))',
                       v_table);
    END LOOP;
END $$;

-- Readers made before this revision (EXECUTE on similar_assets, revoked from PUBLIC, is how
-- grant-reader marks them) keep seeing every dataset: the views read as the caller from now on, so
-- they get what `pgsearch db grant-reader NAME` (no --dataset) gives now.
DO $$
DECLARE
    v_role  text;
    v_table text;
BEGIN
    FOR v_role IN
        SELECT DISTINCT r.rolname
          FROM pg_proc AS p CROSS JOIN aclexplode(p.proacl) AS a JOIN pg_roles AS r ON r.oid = a.grantee
         WHERE p.pronamespace = 'pgsearch'::regnamespace AND p.proname = 'similar_assets'
           AND a.grantee <> p.proowner AND NOT r.rolsuper
         ORDER BY 1
    LOOP
        INSERT INTO pgsearch.reader_datasets (role_name, dataset_id) VALUES (v_role, NULL);
        FOR v_table IN
            SELECT c.relname FROM pg_class AS c
             WHERE c.relnamespace = 'pgsearch'::regnamespace
               AND (c.relkind = 'p' OR (c.relkind = 'r' AND (NOT c.relispartition OR c.relrowsecurity)))
             ORDER BY 1
        LOOP
            EXECUTE format('GRANT SELECT ON pgsearch.%I TO %I', v_table, v_role);
        END LOOP;
        FOR v_table IN
            SELECT p.oid::regprocedure::text FROM pg_proc AS p
             WHERE p.pronamespace = 'pgsearch'::regnamespace
               AND p.proname IN ('search_space', 'item_embedding', 'nearest_in_space', 'query_direction')
        LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', v_table, v_role);
        END LOOP;
    END LOOP;
END $$;
"""

DOWNGRADE = """
DO $$
DECLARE
    v_table text;
BEGIN
    FOR v_table IN SELECT table_name FROM pgsearch.embedding_spaces ORDER BY id LOOP
        EXECUTE format('DROP POLICY IF EXISTS reader_datasets ON pgsearch.%I', v_table);
        EXECUTE format('ALTER TABLE pgsearch.%I DISABLE ROW LEVEL SECURITY', v_table);
    END LOOP;
END $$;
DROP POLICY reader_datasets ON pgsearch.datasets;
ALTER TABLE pgsearch.datasets DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.assets;
ALTER TABLE pgsearch.assets DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.labels;
ALTER TABLE pgsearch.labels DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.shapes;
ALTER TABLE pgsearch.shapes DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.embedding_spaces;
ALTER TABLE pgsearch.embedding_spaces DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.projection_runs;
ALTER TABLE pgsearch.projection_runs DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.group_members;
ALTER TABLE pgsearch.group_members DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.curation_runs;
ALTER TABLE pgsearch.curation_runs DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.projection_points;
ALTER TABLE pgsearch.projection_points DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.asset_embeddings;
ALTER TABLE pgsearch.asset_embeddings DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.shape_embeddings;
ALTER TABLE pgsearch.shape_embeddings DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.asset_embedding_state;
ALTER TABLE pgsearch.asset_embedding_state DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.shape_embedding_state;
ALTER TABLE pgsearch.shape_embedding_state DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.neighbor_graphs;
ALTER TABLE pgsearch.neighbor_graphs DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.neighbors;
ALTER TABLE pgsearch.neighbors DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.uniqueness_scores;
ALTER TABLE pgsearch.uniqueness_scores DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.mislabel_scores;
ALTER TABLE pgsearch.mislabel_scores DISABLE ROW LEVEL SECURITY;
DROP POLICY reader_datasets ON pgsearch.duplicate_members;
ALTER TABLE pgsearch.duplicate_members DISABLE ROW LEVEL SECURITY;
DROP TABLE pgsearch.reader_datasets;
"""


def upgrade() -> None:
    run_sql(op.get_bind().connection.driver_connection, UPGRADE)


def downgrade() -> None:
    run_sql(op.get_bind().connection.driver_connection, DOWNGRADE)
