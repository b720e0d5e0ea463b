-- Search a dataset's assets with a vector computed elsewhere (e.g. a CLIP text embedding). The
-- vector is checked and normalised first (query_direction), so neither its scale nor halfvec's
-- range matters. Runs with the caller's rights, pinned and granted as similar_assets.sql says.
CREATE OR REPLACE FUNCTION pgsearch.search_assets(dataset text, query vector, k integer DEFAULT 10,
                                                  model text DEFAULT NULL)
RETURNS TABLE (asset_id bigint, filename text, path text, distance double precision)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
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

COMMENT ON FUNCTION pgsearch.search_assets(text, vector, integer, text) IS
    'The k assets of a dataset nearest to a vector of the model''s dimension (e.g. a text embedding), '
    'through the HNSW index. '
    'Example: SELECT * FROM pgsearch.search_assets(''street'', ''[0.1, ...]''::vector, 10);';
REVOKE EXECUTE ON FUNCTION pgsearch.search_assets(text, vector, integer, text) FROM PUBLIC;
