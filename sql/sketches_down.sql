-- Reverses sketches.sql (migration 0003): the sketch triggers, functions and columns, and
-- ensure_embedding_space as schema_v1.sql defines it.
DO $$
DECLARE
    v_table text;
BEGIN
    FOR v_table IN SELECT table_name FROM pgsearch.embedding_spaces WHERE target = 'asset'
                   UNION ALL SELECT 'asset_embeddings' LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS sketch_insert ON pgsearch.%I', v_table);
        EXECUTE format('DROP TRIGGER IF EXISTS sketch_update ON pgsearch.%I', v_table);
        EXECUTE format('DROP TRIGGER IF EXISTS sketch_delete ON pgsearch.%I', v_table);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION pgsearch.ensure_embedding_space(p_dataset_id bigint, p_model_id bigint, p_target text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id   bigint;
    v_dim  integer;
    v_name text;
BEGIN
    SELECT id INTO v_id FROM pgsearch.embedding_spaces
     WHERE dataset_id = p_dataset_id AND model_id = p_model_id AND target = p_target;
    IF v_id IS NOT NULL THEN
        RETURN v_id;
    END IF;
    SELECT dim INTO STRICT v_dim FROM pgsearch.embedding_models WHERE id = p_model_id;
    INSERT INTO pgsearch.embedding_spaces (dataset_id, model_id, target, dim, table_name)
    VALUES (p_dataset_id, p_model_id, p_target, v_dim, 'pending')
    RETURNING id INTO v_id;
    v_name := p_target || '_embeddings_' || v_id;
    UPDATE pgsearch.embedding_spaces SET table_name = v_name WHERE id = v_id;
    EXECUTE format('CREATE TABLE pgsearch.%I PARTITION OF pgsearch.%I FOR VALUES IN (%s)',
                   v_name, p_target || '_embeddings', v_id);
    RETURN v_id;
END $$;

DROP FUNCTION IF EXISTS pgsearch.refresh_asset_sketches(bigint), pgsearch.add_sketch_triggers(text),
    pgsearch.asset_embeddings_sketch();
ALTER TABLE pgsearch.embedding_spaces DROP COLUMN IF EXISTS sketch_center;
ALTER TABLE pgsearch.assets DROP COLUMN IF EXISTS sketches;
