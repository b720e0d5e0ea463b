-- Creates (or returns) the space for (dataset, model, target) and its partition of
-- asset_embeddings or shape_embeddings.
CREATE OR REPLACE FUNCTION pgsearch.ensure_embedding_space(p_dataset_id bigint, p_model_id bigint, p_target text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id   bigint;
    v_dim  integer;
    v_name text;
    v_role text;
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
    -- The search functions and the translator read the partition by name: it gets its parent's
    -- row-level security (migrations/versions/0010_reader_datasets.py) and the readers' grant.
    EXECUTE format('ALTER TABLE pgsearch.%I ENABLE ROW LEVEL SECURITY', v_name);
    EXECUTE format('CREATE POLICY reader_datasets ON pgsearch.%I'
                   ' USING (space_id IN (SELECT s.id FROM pgsearch.embedding_spaces AS s))', v_name);
    FOR v_role IN SELECT DISTINCT r.role_name FROM pgsearch.reader_datasets AS r
                   WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = r.role_name) ORDER BY 1 LOOP
        EXECUTE format('GRANT SELECT ON pgsearch.%I TO %I', v_name, v_role);
    END LOOP;
    RETURN v_id;
END $$;

COMMENT ON FUNCTION pgsearch.ensure_embedding_space(bigint, bigint, text) IS
    'The embedding space id of (dataset, model, target), created with its partition '
    '(asset_embeddings_<id> or shape_embeddings_<id>) when missing.';
