-- Reverses views.sql: the SQL surface (views and search functions) of migration 0002.
DROP FUNCTION IF EXISTS
    pgsearch.search_shapes(text, vector, integer, text),
    pgsearch.search_assets(text, vector, integer, text),
    pgsearch.dissimilar_shapes(bigint, integer, text),
    pgsearch.similar_shapes(bigint, integer, text),
    pgsearch.dissimilar_assets(bigint, integer, text),
    pgsearch.similar_assets(bigint, integer, text),
    pgsearch.nearest_in_space(bigint, halfvec, integer, bigint, boolean),
    pgsearch.item_embedding(pgsearch.embedding_spaces, bigint),
    pgsearch.search_space(bigint, text, text);
DROP VIEW IF EXISTS pgsearch.v_projections, pgsearch.v_asset_groups, pgsearch.v_label_counts,
    pgsearch.v_shapes, pgsearch.v_assets;
