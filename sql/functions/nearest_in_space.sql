-- The k items of a space nearest to p_query, or with p_farthest the k farthest, without p_exclude.
-- distance is always the cosine distance to p_query itself. Rows come unordered; callers order.
--
-- Nearest: each space's partition has an HNSW index on (embedding::halfvec(dim))
-- halfvec_cosine_ops, so the query is dynamic SQL on that partition ordered by exactly the indexed
-- expression. Iterative scan keeps the index walking until LIMIT is met; when it still comes up
-- short (a k beyond hnsw.max_scan_tuples, or a partition smaller than k), an exact scan answers
-- instead: exactly k rows whenever k exist.
--
-- Farthest is an exact scan (the nearest to -p_query under cosine): an HNSW walk towards -q starts
-- among data that lies nowhere near -q and stops early (recall near 0.3 on embeddings sharing a
-- common direction, as image embeddings do). It reads every vector of the space (about 0.85 s for
-- 1M); sketches, which keep angles around the centre and not distances from it, rank the farthest
-- rows poorly.
--
-- Function-level SET: restored when the function returns, so a caller's session is untouched.
-- Pinned and not for PUBLIC, as search_space.sql says.
CREATE OR REPLACE FUNCTION pgsearch.nearest_in_space(p_space_id bigint, p_query halfvec, p_k integer,
                                                     p_exclude bigint DEFAULT NULL,
                                                     p_farthest boolean DEFAULT false)
RETURNS TABLE (item_id bigint, distance double precision)
LANGUAGE plpgsql STABLE
SET hnsw.iterative_scan = 'relaxed_order'
SET hnsw.ef_search = '100'
SET hnsw.max_scan_tuples = '20000'
SET search_path FROM CURRENT
AS $$
DECLARE
    v_space pgsearch.embedding_spaces;
    v_probe halfvec;
    v_ids   bigint[];
    v_dists double precision[];
BEGIN
    IF p_k IS NULL OR p_k < 0 THEN
        RAISE EXCEPTION 'k must be a number of rows >= 0, not %', coalesce(p_k::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_query IS NULL THEN
        RAISE EXCEPTION 'the query vector is NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO STRICT v_space FROM pgsearch.embedding_spaces WHERE id = p_space_id;
    IF vector_dims(p_query) <> v_space.dim THEN
        RAISE EXCEPTION 'the query vector has % dimensions; this model''s embeddings have %',
                        vector_dims(p_query), v_space.dim
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_k = 0 THEN
        RETURN;
    END IF;
    IF NOT p_farthest THEN
        -- A candidate list of at least k (capped by pgvector's maximum); iterative scan goes beyond.
        PERFORM set_config('hnsw.ef_search', greatest(least(p_k, 999) + 1, 100)::text, true);
        -- ORDER BY is the indexed expression verbatim, so the HNSW index serves it.
        EXECUTE format(
            'SELECT array_agg(n.item_id), array_agg((n.v <=> $1)::double precision)
               FROM (SELECT e.%3$I AS item_id, e.embedding::halfvec(%1$s) AS v
                       FROM pgsearch.%2$I AS e
                      WHERE e.%3$I IS DISTINCT FROM $2
                      ORDER BY e.embedding::halfvec(%1$s) <=> $1
                      LIMIT $3) AS n',
            v_space.dim, v_space.table_name, v_space.target || '_id')
           INTO v_ids, v_dists USING p_query, p_exclude, p_k;
    END IF;
    IF coalesce(cardinality(v_ids), 0) < p_k THEN
        -- Farthest, or short: an exact scan (an expression the index cannot serve). Farthest
        -- from q is nearest to -q under cosine distance.
        v_probe := CASE WHEN p_farthest THEN p_query * array_fill(-1, ARRAY[v_space.dim])::halfvec
                        ELSE p_query END;
        EXECUTE format(
            'SELECT array_agg(n.item_id), array_agg((n.v <=> $1)::double precision)
               FROM (SELECT e.%2$I AS item_id, e.embedding AS v
                       FROM pgsearch.%1$I AS e
                      WHERE e.%2$I IS DISTINCT FROM $3
                      ORDER BY (e.embedding <=> $2) + 0, e.%2$I
                      LIMIT $4) AS n',
            v_space.table_name, v_space.target || '_id')
           INTO v_ids, v_dists USING p_query, v_probe, p_exclude, p_k;
    END IF;
    RETURN QUERY SELECT u.item_id, u.distance FROM unnest(v_ids, v_dists) AS u(item_id, distance);
END $$;

COMMENT ON FUNCTION pgsearch.nearest_in_space(bigint, halfvec, integer, bigint, boolean) IS
    'The k items of an embedding space nearest to a vector through the space''s HNSW index (an exact '
    'scan when the index comes up short), or with p_farthest the k farthest by an exact scan; '
    'p_exclude left out. Rows unordered, distance the cosine distance to the vector.';
REVOKE EXECUTE ON FUNCTION pgsearch.nearest_in_space(bigint, halfvec, integer, bigint, boolean) FROM PUBLIC;
