-- Undoes search_fixes.sql (migration 0004): the 0002 bodies of the search functions again.


CREATE OR REPLACE FUNCTION pgsearch.item_embedding(p_space pgsearch.embedding_spaces, p_item_id bigint)
RETURNS halfvec
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_vector halfvec;
BEGIN
    EXECUTE format('SELECT e.embedding FROM pgsearch.%I AS e WHERE e.%I = $1',
                   p_space.table_name, p_space.target || '_id')
       INTO v_vector USING p_item_id;
    IF v_vector IS NULL THEN
        RAISE EXCEPTION '% % has no embedding from this model yet', p_space.target, p_item_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'see its embedding state with pgsearch status, or compute it with pgsearch embed';
    END IF;
    RETURN v_vector;
END $$;

CREATE OR REPLACE FUNCTION pgsearch.nearest_in_space(p_space_id bigint, p_query halfvec, p_k integer,
                                          p_exclude bigint DEFAULT NULL, p_farthest boolean DEFAULT false)
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
    v_ann   text;
    v_exact text;
BEGIN
    IF p_k IS NULL OR p_k < 0 THEN
        RAISE EXCEPTION 'k must be a number of rows >= 0, not %', coalesce(p_k::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
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
    v_probe := CASE WHEN p_farthest THEN p_query * array_fill(-1, ARRAY[v_space.dim])::halfvec
                    ELSE p_query END;
    -- A candidate list of at least k (capped by pgvector's maximum); iterative scan goes beyond.
    PERFORM set_config('hnsw.ef_search', least(greatest(p_k + 1, 100), 1000)::text, true);
    -- ORDER BY is the indexed expression verbatim, so the HNSW index serves it.
    v_ann := format(
        'SELECT array_agg(n.item_id), array_agg((n.v <=> $1)::double precision)
           FROM (SELECT e.%3$I AS item_id, e.embedding::halfvec(%1$s) AS v
                   FROM pgsearch.%2$I AS e
                  WHERE e.%3$I IS DISTINCT FROM $3
                  ORDER BY e.embedding::halfvec(%1$s) <=> $2
                  LIMIT $4) AS n',
        v_space.dim, v_space.table_name, v_space.target || '_id');
    EXECUTE v_ann INTO v_ids, v_dists USING p_query, v_probe, p_exclude, p_k;
    IF coalesce(cardinality(v_ids), 0) < p_k THEN
        -- Short: an expression the index cannot serve makes this an exact scan.
        v_exact := format(
            'SELECT array_agg(n.item_id), array_agg((n.v <=> $1)::double precision)
               FROM (SELECT e.%2$I AS item_id, e.embedding AS v
                       FROM pgsearch.%1$I AS e
                      WHERE e.%2$I IS DISTINCT FROM $3
                      ORDER BY (e.embedding <=> $2) + 0
                      LIMIT $4) AS n',
            v_space.table_name, v_space.target || '_id');
        EXECUTE v_exact INTO v_ids, v_dists USING p_query, v_probe, p_exclude, p_k;
    END IF;
    RETURN QUERY SELECT u.item_id, u.distance FROM unnest(v_ids, v_dists) AS u(item_id, distance);
END $$;

CREATE OR REPLACE FUNCTION pgsearch.search_assets(dataset text, query vector, k integer DEFAULT 10, model text DEFAULT NULL)
RETURNS TABLE (asset_id bigint, filename text, path text, distance double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
    v_dataset bigint;
    v_space   pgsearch.embedding_spaces;
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
          FROM pgsearch.nearest_in_space(v_space.id, query::halfvec, k) AS n
          JOIN pgsearch.assets AS a ON a.id = n.item_id
         ORDER BY n.distance, a.id;
END $$;

CREATE OR REPLACE FUNCTION pgsearch.search_shapes(dataset text, query vector, k integer DEFAULT 10, model text DEFAULT NULL)
RETURNS TABLE (shape_id bigint, asset_id bigint, filename text, label text, distance double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
    v_dataset bigint;
    v_space   pgsearch.embedding_spaces;
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
          FROM pgsearch.nearest_in_space(v_space.id, query::halfvec, k) AS n
          JOIN pgsearch.shapes AS s ON s.id = n.item_id
          JOIN pgsearch.assets AS a ON a.id = s.asset_id
          JOIN pgsearch.labels AS l ON l.id = s.label_id
         ORDER BY n.distance, s.id;
END $$;

COMMENT ON FUNCTION pgsearch.search_assets(text, vector, integer, text) IS
    'The k assets of a dataset nearest to a vector of the model''s dimension (e.g. a text embedding). '
    'Example: SELECT * FROM pgsearch.search_assets(''street'', ''[0.1, ...]''::vector, 10);';
COMMENT ON FUNCTION pgsearch.search_shapes(text, vector, integer, text) IS
    'The k shapes of a dataset nearest to a vector of the model''s dimension.';

COMMENT ON COLUMN pgsearch.v_assets.format IS 'Image format, e.g. JPEG, PNG.';
COMMENT ON SCHEMA pgsearch IS NULL;
COMMENT ON FUNCTION pgsearch.drop_dataset(text) IS NULL;
COMMENT ON FUNCTION pgsearch.build_embedding_index(bigint, integer, integer) IS NULL;
COMMENT ON FUNCTION pgsearch.drop_embedding_space(bigint) IS NULL;

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
        'pgsearch.search_assets(text, vector, integer, text)',
        'pgsearch.search_shapes(text, vector, integer, text)']::regprocedure[]
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pgsearch, %I, pg_temp', v_function, v_vector_schema);
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', v_function);
    END LOOP;
END $$;

DROP FUNCTION pgsearch.query_direction(vector);
