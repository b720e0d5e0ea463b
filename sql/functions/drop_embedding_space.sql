-- Drops a space: its partitions (vectors with their index, neighbour graph, curation results)
-- at once, and through the cascades its state rows, projections and curation runs.
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
