-- Curation II: per-item results of the curation tools, each written whole by the tool that
-- computes it, one partition per embedding space (as the vectors and the neighbour graph are).
-- Applied by migrations/versions/0007_curation_scores.py; reversed by curation_scores_down.sql.
--
-- One table per tool rather than one wide table of scores: a tool replaces its own results for a
-- space as a fresh partition filled by binary COPY (seconds at 1,000,000 items) instead of
-- updating a column in a million shared rows, and no tool's rewrite touches another's rows.
--
--   pgsearch outliers   -> uniqueness_scores_<space>  (every item of the space)
--   pgsearch mislabels  -> mislabel_scores_<space>    (every labelled item of the space)
--   pgsearch duplicates -> duplicate_members_<space>  (only items that have a duplicate)
--
-- curation_runs records each run (tool, parameters, size, time): the query language reads the
-- results of the latest run per (dataset, target, tool), and a run older than its items says stale.

CREATE TABLE pgsearch.curation_runs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id bigint NOT NULL REFERENCES pgsearch.datasets (id) ON DELETE CASCADE,
    space_id   bigint NOT NULL REFERENCES pgsearch.embedding_spaces (id) ON DELETE CASCADE,
    target     text NOT NULL CHECK (target IN ('asset', 'shape')),
    tool       text NOT NULL CHECK (tool IN ('duplicates', 'outliers', 'mislabels', 'curate')),
    params     jsonb NOT NULL DEFAULT '{}',
    -- Items scored, and items flagged at the run's threshold.
    items      bigint,
    flagged    bigint,
    seconds    double precision,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX curation_runs_dataset_idx ON pgsearch.curation_runs (dataset_id, target, tool, id);
COMMENT ON TABLE pgsearch.curation_runs IS
    'One row per run of a curation tool (pgsearch duplicates / outliers / mislabels / curate).';

-- uniqueness: 0 (typical: its neighbours are as close as most items'') .. 1 (the most isolated);
-- knn_distance: the mean cosine distance to its k nearest neighbours that the score ranks.
CREATE TABLE pgsearch.uniqueness_scores (
    space_id     bigint NOT NULL,
    item_id      bigint NOT NULL,
    uniqueness   real NOT NULL,
    knn_distance real NOT NULL,
    cluster_size integer,
    PRIMARY KEY (space_id, item_id)
) PARTITION BY LIST (space_id);
COMMENT ON TABLE pgsearch.uniqueness_scores IS
    'pgsearch outliers: how isolated each item is in its embedding space; one partition per space.';

CREATE TABLE pgsearch.mislabel_scores (
    space_id        bigint NOT NULL,
    item_id         bigint NOT NULL,
    label           text NOT NULL,
    mislabel_score  real NOT NULL,
    suggested_label text,
    PRIMARY KEY (space_id, item_id)
) PARTITION BY LIST (space_id);
COMMENT ON TABLE pgsearch.mislabel_scores IS
    'pgsearch mislabels: the chance each item''s label is wrong, from its neighbours'' labels, and '
    'the label they suggest; one partition per space.';

-- duplicate_group: the id of the group's representative (the item kept by --keep); the
-- representative is a member of its own group. kind: exact (same content hash) or near.
CREATE TABLE pgsearch.duplicate_members (
    space_id        bigint NOT NULL,
    item_id         bigint NOT NULL,
    duplicate_group bigint NOT NULL,
    representative  boolean NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('exact', 'near')),
    distance        real NOT NULL,
    PRIMARY KEY (space_id, item_id)
) PARTITION BY LIST (space_id);
COMMENT ON TABLE pgsearch.duplicate_members IS
    'pgsearch duplicates: items with an exact or near duplicate, grouped; one partition per space.';

-- drop_embedding_space as in curation.sql, plus the tools' partitions of the space.
CREATE OR REPLACE FUNCTION pgsearch.drop_embedding_space(p_space_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s pgsearch.embedding_spaces;
    v_prefix text;
BEGIN
    SELECT * INTO s FROM pgsearch.embedding_spaces WHERE id = p_space_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    FOREACH v_prefix IN ARRAY ARRAY['neighbors_', 'uniqueness_', 'mislabels_', 'duplicates_'] LOOP
        EXECUTE format('DROP TABLE IF EXISTS pgsearch.%I', v_prefix || p_space_id);
    END LOOP;
    EXECUTE format('DROP TABLE IF EXISTS pgsearch.%I', s.table_name);
    DELETE FROM pgsearch.embedding_spaces WHERE id = p_space_id;
END $$;
COMMENT ON FUNCTION pgsearch.drop_embedding_space(bigint) IS
    'Drops one embedding space: its partition of vectors with their index, its neighbour graph, '
    'curation results, state and projections.';
