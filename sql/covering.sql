-- Filters answered from an index alone: group members with their sketches, and the status index
-- carrying each row's id and sketches. Applied by migrations/versions/0005_covering_filters.py.
--
-- Why: the exact path of a filtered similarity search (translator/statement.py) needs the id and
-- the sketch of every matching asset. Read from the asset rows, a 1% filter over 1M assets visits
-- one random heap page per matching row (about 10 ms on 2 cores before any ranking). A btree that
-- carries the id and the sketch next to the filter's key hands the same rows over from a few
-- hundred consecutive index pages (an index-only scan, about 1 ms). groups is a text[] served by
-- GIN, which carries no extra columns, hence a table of memberships with a covering primary key.
-- `pgsearch index add` builds the same kind of index for metadata fields (pgsearch/indexes.py).
--
-- Index-only scans skip the heap only on pages the visibility map marks all-visible: the loader
-- and `pgsearch index add` VACUUM what they wrote.

-- Built under another name and swapped in at the end: DROP INDEX locks assets against reads until
-- the migration commits, CREATE INDEX only against writes.
CREATE INDEX assets_dataset_status_covering_idx ON pgsearch.assets (dataset_id, status) INCLUDE (id, sketches);

CREATE TABLE pgsearch.group_members (
    dataset_id bigint NOT NULL,
    name       text   NOT NULL,
    asset_id   bigint NOT NULL,
    sketches   varbit[],
    PRIMARY KEY (dataset_id, name, asset_id) INCLUDE (sketches)
);
COMMENT ON TABLE pgsearch.group_members IS
    'One row per (asset, group) of assets.groups, with a copy of the asset''s sketches: the exact '
    'path of a similarity search filtered by one group reads them from the primary key alone. '
    'Kept by triggers on assets (pgsearch.refresh_group_members() repairs writes that bypassed '
    'them); never written directly.';
COMMENT ON COLUMN pgsearch.group_members.dataset_id IS 'The asset''s dataset.';
COMMENT ON COLUMN pgsearch.group_members.name IS 'A group the asset is in.';
COMMENT ON COLUMN pgsearch.group_members.asset_id IS 'The asset (pgsearch.assets.id).';
COMMENT ON COLUMN pgsearch.group_members.sketches IS 'A copy of pgsearch.assets.sketches.';

-- The members of the rows in new_rows / old_rows, rewritten only for rows whose dataset, groups
-- or sketches changed: most updates of assets (status, label counts) leave them alone. Statement
-- triggers, so a COPY of 100,000 assets writes their memberships in one INSERT.
CREATE FUNCTION pgsearch.assets_group_members() RETURNS trigger
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

CREATE FUNCTION pgsearch.assets_truncate_group_members() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE pgsearch.group_members;
    RETURN NULL;
END $$;

CREATE TRIGGER group_members_insert AFTER INSERT ON pgsearch.assets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION pgsearch.assets_group_members();
CREATE TRIGGER group_members_update AFTER UPDATE ON pgsearch.assets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION pgsearch.assets_group_members();
CREATE TRIGGER group_members_delete AFTER DELETE ON pgsearch.assets
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION pgsearch.assets_group_members();
CREATE TRIGGER group_members_truncate AFTER TRUNCATE ON pgsearch.assets
    FOR EACH STATEMENT EXECUTE FUNCTION pgsearch.assets_truncate_group_members();

-- Rebuilds group_members from assets (after writes that bypassed the triggers, e.g. with
-- session_replication_role = replica or on a logical replication subscriber). Returns the rows.
CREATE FUNCTION pgsearch.refresh_group_members() RETURNS bigint
LANGUAGE plpgsql AS $$
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

SELECT pgsearch.refresh_group_members();

DROP INDEX pgsearch.assets_dataset_status_idx;
ALTER INDEX pgsearch.assets_dataset_status_covering_idx RENAME TO assets_dataset_status_idx;
