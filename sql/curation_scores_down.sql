-- Reverses curation_scores.sql.
DO $$
DECLARE
    v_parent text;
    v_table  text;
BEGIN
    FOREACH v_parent IN ARRAY ARRAY['uniqueness_scores', 'mislabel_scores', 'duplicate_members'] LOOP
        FOR v_table IN SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
                        WHERE i.inhparent = format('pgsearch.%I', v_parent)::regclass LOOP
            EXECUTE format('DROP TABLE pgsearch.%I', v_table);
        END LOOP;
    END LOOP;
END $$;
DROP TABLE pgsearch.duplicate_members;
DROP TABLE pgsearch.mislabel_scores;
DROP TABLE pgsearch.uniqueness_scores;
DROP TABLE pgsearch.curation_runs;
CREATE OR REPLACE FUNCTION pgsearch.drop_embedding_space(p_space_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s pgsearch.embedding_spaces;
BEGIN
    SELECT * INTO s FROM pgsearch.embedding_spaces WHERE id = p_space_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS pgsearch.%I', 'neighbors_' || p_space_id);
    EXECUTE format('DROP TABLE IF EXISTS pgsearch.%I', s.table_name);
    DELETE FROM pgsearch.embedding_spaces WHERE id = p_space_id;
END $$;
COMMENT ON FUNCTION pgsearch.drop_embedding_space(bigint) IS
    'Drops one embedding space: its partition of vectors with their index, its neighbour graph, '
    'state and projections.';
