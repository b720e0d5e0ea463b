-- Reverses schema_v1.sql. The schema itself stays: it holds alembic's version table.
DO $$
DECLARE
    t text;
BEGIN
    -- Partitions first: they are created per embedding space at run time.
    FOR t IN SELECT table_name FROM pgsearch.embedding_spaces LOOP
        EXECUTE format('DROP TABLE IF EXISTS pgsearch.%I', t);
    END LOOP;
END $$;
DROP TABLE IF EXISTS pgsearch.projection_points, pgsearch.projection_runs,
    pgsearch.asset_embedding_state, pgsearch.shape_embedding_state,
    pgsearch.asset_embeddings, pgsearch.shape_embeddings,
    pgsearch.embedding_spaces, pgsearch.embedding_models,
    pgsearch.shapes, pgsearch.labels, pgsearch.assets, pgsearch.datasets CASCADE;
DROP FUNCTION IF EXISTS pgsearch.drop_dataset(text), pgsearch.drop_embedding_space(bigint),
    pgsearch.build_embedding_index(bigint, integer, integer),
    pgsearch.ensure_embedding_space(bigint, bigint, text),
    pgsearch.touch_updated_at(), pgsearch.labels_after_rename(),
    pgsearch.shapes_after_update(), pgsearch.shapes_after_delete(), pgsearch.shapes_after_insert(),
    pgsearch.refresh_label_counts(bigint[]);
