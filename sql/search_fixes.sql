-- Search function fixes (migration 0004), over views.sql (0002) and sketches.sql (0003):
-- - "least similar" is an exact search: an HNSW walk towards -q starts among data that lies nowhere
--   near -q and stops early (recall near 0.3 on embeddings sharing a common direction, as image
--   embeddings do). It reads every vector of the space (about 0.85 s for 1M): sketches, which keep
--   angles around the centre and not distances from it, rank the farthest rows poorly.
-- - search_assets / search_shapes refuse a NULL or all-zero vector (it has no direction) and
--   normalise the rest before the halfvec cast, so neither scale (1e-9, 1e6) nor halfvec's range
--   matters: cosine distance does not depend on it.
-- - a k near 2^31 no longer overflows the ef_search arithmetic.
-- - an asset whose file could not be decoded says so, instead of "compute it with pgsearch embed".
-- CREATE OR REPLACE resets a function's SET clauses: the search_path pin is applied again below.

CREATE OR REPLACE FUNCTION pgsearch.item_embedding(p_space pgsearch.embedding_spaces, p_item_id bigint)
RETURNS halfvec
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_vector halfvec;
    v_error  text;
BEGIN
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

CREATE OR REPLACE FUNCTION pgsearch.nearest_in_space(p_space_id bigint, p_query halfvec, p_k integer,
                                                     p_exclude bigint DEFAULT NULL,
                                                     p_farthest boolean DEFAULT false)
RETURNS TABLE (item_id bigint, distance double precision)
LANGUAGE plpgsql STABLE
-- Function-level SET: restored when the function returns, so a caller's session is untouched.
SET hnsw.iterative_scan = 'relaxed_order'
SET hnsw.ef_search = '100'
SET hnsw.max_scan_tuples = '20000'
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

-- A vector from outside: checked, then normalised (cosine distance ignores scale; halfvec's range
-- and precision do not).
CREATE FUNCTION pgsearch.query_direction(p_query vector) RETURNS halfvec
LANGUAGE plpgsql IMMUTABLE AS $$
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

CREATE OR REPLACE FUNCTION pgsearch.search_assets(dataset text, query vector, k integer DEFAULT 10,
                                                  model text DEFAULT NULL)
RETURNS TABLE (asset_id bigint, filename text, path text, distance double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
    v_dataset bigint;
    v_space   pgsearch.embedding_spaces;
    v_query   halfvec := pgsearch.query_direction(query);
BEGIN
    SELECT d.id INTO v_dataset FROM pgsearch.datasets AS d WHERE d.name = search_assets.dataset;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dataset "%" does not exist', search_assets.dataset
            USING ERRCODE = 'no_data_found',
                  HINT = 'datasets: ' || coalesce((SELECT string_agg(name, ', ' ORDER BY name)
                                                      FROM pgsearch.datasets), 'none');
    END IF;
    v_space := pgsearch.search_space(v_dataset, 'asset', model);
    RETURN QUERY
        SELECT a.id, a.filename, a.path, n.distance
          FROM pgsearch.nearest_in_space(v_space.id, v_query, k) AS n
          JOIN pgsearch.assets AS a ON a.id = n.item_id
         ORDER BY n.distance, a.id;
END $$;

CREATE OR REPLACE FUNCTION pgsearch.search_shapes(dataset text, query vector, k integer DEFAULT 10,
                                                  model text DEFAULT NULL)
RETURNS TABLE (shape_id bigint, asset_id bigint, filename text, label text, distance double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
    v_dataset bigint;
    v_space   pgsearch.embedding_spaces;
    v_query   halfvec := pgsearch.query_direction(query);
BEGIN
    SELECT d.id INTO v_dataset FROM pgsearch.datasets AS d WHERE d.name = search_shapes.dataset;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dataset "%" does not exist', search_shapes.dataset
            USING ERRCODE = 'no_data_found',
                  HINT = 'datasets: ' || coalesce((SELECT string_agg(name, ', ' ORDER BY name)
                                                      FROM pgsearch.datasets), 'none');
    END IF;
    v_space := pgsearch.search_space(v_dataset, 'shape', model);
    RETURN QUERY
        SELECT s.id, s.asset_id, a.filename, l.name, n.distance
          FROM pgsearch.nearest_in_space(v_space.id, v_query, k) AS n
          JOIN pgsearch.shapes AS s ON s.id = n.item_id
          JOIN pgsearch.assets AS a ON a.id = s.asset_id
          JOIN pgsearch.labels AS l ON l.id = s.label_id
         ORDER BY n.distance, s.id;
END $$;

COMMENT ON FUNCTION pgsearch.query_direction(vector) IS
    'The unit vector along a query vector, as halfvec; an error for NULL or all zeros.';
COMMENT ON COLUMN pgsearch.v_assets.format IS
    'Image format in lower case, as Pillow names it: jpeg, png, webp, tiff, gif, bmp, ...';
COMMENT ON SCHEMA pgsearch IS
    'pgsearch: computer-vision datasets (assets, shapes, groups, metadata, embeddings). '
    'Start with the v_* views and the similar_* / search_* functions.';
COMMENT ON FUNCTION pgsearch.drop_dataset(text) IS
    'Deletes a dataset with its assets, shapes and embedding partitions; false when it does not exist.';
COMMENT ON FUNCTION pgsearch.build_embedding_index(bigint, integer, integer) IS
    'Builds the HNSW index of one embedding space (after a bulk load); nothing when it has one.';
COMMENT ON FUNCTION pgsearch.drop_embedding_space(bigint) IS
    'Drops one embedding space: its partition of vectors with their index, state and projections.';

DO $$
DECLARE
    v_vector_schema text;
    v_function      regprocedure;
BEGIN
    SELECT n.nspname INTO STRICT v_vector_schema
      FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace
     WHERE e.extname = 'vector';
    FOREACH v_function IN ARRAY ARRAY[
        'pgsearch.item_embedding(pgsearch.embedding_spaces, bigint)',
        'pgsearch.nearest_in_space(bigint, halfvec, integer, bigint, boolean)',
        'pgsearch.query_direction(vector)',
        'pgsearch.search_assets(text, vector, integer, text)',
        'pgsearch.search_shapes(text, vector, integer, text)']::regprocedure[]
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pgsearch, %I, pg_temp', v_function, v_vector_schema);
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', v_function);
    END LOOP;
END $$;
