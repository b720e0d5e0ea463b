-- The k shapes farthest from a shape (an exact scan, see nearest_in_space.sql).
-- Runs with the caller's rights (not SECURITY DEFINER): row-level security shows a reader only
-- its datasets' rows (migrations/versions/0010_reader_datasets.py), and `pgsearch db grant-reader`
-- gives it SELECT on the tables and embedding partitions behind it. It still does not trust the
-- caller's search_path: it is pinned to the one the objects are applied with (pgsearch, the vector
-- extension's schema, pg_temp; see sql/README.md). Only roles granted EXECUTE (pgsearch db
-- grant-reader) may call it.
CREATE OR REPLACE FUNCTION pgsearch.dissimilar_shapes(query_shape_id bigint, k integer DEFAULT 10, model text DEFAULT NULL)
RETURNS TABLE (shape_id bigint, asset_id bigint, filename text, label text, distance double precision)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_dataset bigint;
    v_space   pgsearch.embedding_spaces;
BEGIN
    SELECT s.dataset_id INTO v_dataset FROM pgsearch.shapes AS s WHERE s.id = query_shape_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'shape % does not exist', query_shape_id USING ERRCODE = 'no_data_found';
    END IF;
    v_space := pgsearch.search_space(v_dataset, 'shape', model);
    RETURN QUERY
        SELECT s.id, s.asset_id, a.filename, l.name, n.distance
          FROM pgsearch.nearest_in_space(v_space.id, pgsearch.item_embedding(v_space, query_shape_id),
                                         k, query_shape_id, true) AS n
          JOIN pgsearch.shapes AS s ON s.id = n.item_id
          JOIN pgsearch.assets AS a ON a.id = s.asset_id
          JOIN pgsearch.labels AS l ON l.id = s.label_id
         ORDER BY n.distance DESC, s.id;
END $$;

COMMENT ON FUNCTION pgsearch.dissimilar_shapes(bigint, integer, text) IS
    'The k shapes least similar to a shape (largest cosine distance), by an exact scan of the '
    'dataset''s crop vectors. Example: SELECT * FROM pgsearch.dissimilar_shapes(7, 10);';
REVOKE EXECUTE ON FUNCTION pgsearch.dissimilar_shapes(bigint, integer, text) FROM PUBLIC;
