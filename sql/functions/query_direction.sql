-- A vector from outside: checked, then normalised (cosine distance ignores scale; halfvec's range
-- and precision do not). Pinned and not for PUBLIC, as search_space.sql says.
CREATE OR REPLACE FUNCTION pgsearch.query_direction(p_query vector) RETURNS halfvec
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
BEGIN
    IF p_query IS NULL THEN
        RAISE EXCEPTION 'the query vector is NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF vector_norm(p_query) = 0 THEN
        RAISE EXCEPTION 'the query vector is all zeros: it has no direction to search along'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN l2_normalize(p_query)::halfvec;
END $$;

COMMENT ON FUNCTION pgsearch.query_direction(vector) IS
    'The unit vector along a query vector, as halfvec; an error for NULL or all zeros.';
REVOKE EXECUTE ON FUNCTION pgsearch.query_direction(vector) FROM PUBLIC;
