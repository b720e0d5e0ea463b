-- Search a dataset's shapes with a vector computed elsewhere, as search_assets.sql does assets.
CREATE OR REPLACE FUNCTION pgsearch.search_shapes(dataset text, query vector, k integer DEFAULT 10,
                                                  model text DEFAULT NULL)
RETURNS TABLE (shape_id bigint, asset_id bigint, filename text, label text, distance double precision)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
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

COMMENT ON FUNCTION pgsearch.search_shapes(text, vector, integer, text) IS
    'The k shapes of a dataset nearest to a vector of the model''s dimension, through the HNSW index.';
REVOKE EXECUTE ON FUNCTION pgsearch.search_shapes(text, vector, integer, text) FROM PUBLIC;
