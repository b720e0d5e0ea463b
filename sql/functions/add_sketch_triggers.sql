-- The sketch triggers (sql/triggers/asset_embeddings_sketch.sql) on one table: the parent
-- asset_embeddings or one asset space's partition. Statement triggers see only the table the
-- statement names: writes through the parent fire the parent's, writes straight into a partition
-- (the loader's COPY) fire the partition's, so ensure_embedding_space adds them to each new one.
CREATE OR REPLACE FUNCTION pgsearch.add_sketch_triggers(p_table text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER sketch_insert AFTER INSERT ON pgsearch.%I '
                   'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT '
                   'EXECUTE FUNCTION pgsearch.asset_embeddings_sketch()', p_table);
    EXECUTE format('CREATE TRIGGER sketch_update AFTER UPDATE ON pgsearch.%I '
                   'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT '
                   'EXECUTE FUNCTION pgsearch.asset_embeddings_sketch()', p_table);
    EXECUTE format('CREATE TRIGGER sketch_delete AFTER DELETE ON pgsearch.%I '
                   'REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT '
                   'EXECUTE FUNCTION pgsearch.asset_embeddings_sketch()', p_table);
END $$;

COMMENT ON FUNCTION pgsearch.add_sketch_triggers(text) IS
    'Creates the sketch_insert / sketch_update / sketch_delete triggers on one table of asset vectors '
    '(asset_embeddings or a partition of it), which keep assets.sketches.';
