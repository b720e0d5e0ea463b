-- The stored vector of one asset or shape in a space; an error when it has none, saying why when
-- the asset's file could not be read. Pinned and not for PUBLIC, as search_space.sql says.
CREATE OR REPLACE FUNCTION pgsearch.item_embedding(p_space pgsearch.embedding_spaces, p_item_id bigint)
RETURNS halfvec
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_space  pgsearch.embedding_spaces;
    v_vector halfvec;
    v_error  text;
BEGIN
    -- The space as the caller may see it (row-level security), not as the argument says: a row
    -- made up by the caller names no table the caller could not name itself.
    SELECT s.* INTO v_space FROM pgsearch.embedding_spaces AS s WHERE s.id = p_space.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'embedding space % does not exist', p_space.id USING ERRCODE = 'no_data_found';
    END IF;
    p_space := v_space;
    EXECUTE format('SELECT e.embedding FROM pgsearch.%I AS e WHERE e.%I = $1',
                   p_space.table_name, p_space.target || '_id')
       INTO v_vector USING p_item_id;
    IF v_vector IS NULL THEN
        IF p_space.target = 'asset' THEN
            SELECT a.load_error INTO v_error FROM pgsearch.assets AS a WHERE a.id = p_item_id;
        END IF;
        IF v_error IS NOT NULL THEN
            RAISE EXCEPTION 'asset % has no embedding: its file could not be read (%)', p_item_id, v_error
                USING ERRCODE = 'no_data_found',
                      HINT = 'replace or fix the file, then load the folder again';
        END IF;
        RAISE EXCEPTION '% % has no embedding from this model yet', p_space.target, p_item_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'see its embedding state with pgsearch status, or compute it with pgsearch embed';
    END IF;
    RETURN v_vector;
END $$;

COMMENT ON FUNCTION pgsearch.item_embedding(pgsearch.embedding_spaces, bigint) IS
    'The stored vector of one asset or shape in an embedding space; an error saying why when it has none.';
REVOKE EXECUTE ON FUNCTION pgsearch.item_embedding(pgsearch.embedding_spaces, bigint) FROM PUBLIC;
