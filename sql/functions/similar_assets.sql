-- The k assets nearest to an asset, itself excluded (HNSW index, see nearest_in_space.sql).
-- Runs with the caller's rights (not SECURITY DEFINER): row-level security shows a reader only
-- its datasets' rows (migrations/versions/0010_reader_datasets.py), and `pgsearch db grant-reader`
-- gives it SELECT on the tables and embedding partitions behind it. It still does not trust the
-- caller's search_path: it is pinned to the one the objects are applied with (pgsearch, the vector
-- extension's schema, pg_temp; see sql/README.md). Only roles granted EXECUTE (pgsearch db
-- grant-reader) may call it.
CREATE OR REPLACE FUNCTION pgsearch.similar_assets(query_asset_id bigint, k integer DEFAULT 10, model text DEFAULT NULL)
RETURNS TABLE (asset_id bigint, filename text, path text, distance double precision)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_dataset bigint;
    v_space   pgsearch.embedding_spaces;
BEGIN
    SELECT a.dataset_id INTO v_dataset FROM pgsearch.assets AS a WHERE a.id = query_asset_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'asset % does not exist', query_asset_id USING ERRCODE = 'no_data_found';
    END IF;
    v_space := pgsearch.search_space(v_dataset, 'asset', model);
    RETURN QUERY
        SELECT a.id, a.filename, a.path, n.distance
          FROM pgsearch.nearest_in_space(v_space.id, pgsearch.item_embedding(v_space, query_asset_id),
                                         k, query_asset_id, false) AS n
          JOIN pgsearch.assets AS a ON a.id = n.item_id
         ORDER BY n.distance, a.id;
END $$;

COMMENT ON FUNCTION pgsearch.similar_assets(bigint, integer, text) IS
    'The k assets most similar to an asset (cosine distance of its embedding, HNSW index), itself '
    'excluded. model names the embedding model when the dataset has several. '
    'Example: SELECT * FROM pgsearch.similar_assets(42, 10);';
REVOKE EXECUTE ON FUNCTION pgsearch.similar_assets(bigint, integer, text) FROM PUBLIC;
