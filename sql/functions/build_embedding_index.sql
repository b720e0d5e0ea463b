-- Builds the space's HNSW index (cosine, on the vector cast to the space's dimension).
-- Called after a bulk load; later loads keep it up to date by plain inserts.
CREATE OR REPLACE FUNCTION pgsearch.build_embedding_index(p_space_id bigint, p_m integer DEFAULT 16,
                                                          p_ef_construction integer DEFAULT 128)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    s pgsearch.embedding_spaces;
BEGIN
    SELECT * INTO STRICT s FROM pgsearch.embedding_spaces WHERE id = p_space_id;
    IF s.indexed THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE INDEX %I ON pgsearch.%I USING hnsw ((embedding::halfvec(%s)) halfvec_cosine_ops) '
                   'WITH (m = %s, ef_construction = %s)',
                   s.table_name || '_hnsw', s.table_name, s.dim, p_m, p_ef_construction);
    UPDATE pgsearch.embedding_spaces SET indexed = true WHERE id = p_space_id;
END $$;

COMMENT ON FUNCTION pgsearch.build_embedding_index(bigint, integer, integer) IS
    'Builds the HNSW index of one embedding space (after a bulk load); nothing when it has one.';
