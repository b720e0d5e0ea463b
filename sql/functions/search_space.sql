-- The space searched for (dataset, target, model); model may be NULL when the dataset has one, or
-- several and a default (datasets.default_model_id, `pgsearch embed --default-model`) among them.
-- Called by the search functions, with the caller's rights: like them, it is pinned to the
-- search_path the objects are applied with (pgsearch, the vector extension's schema, pg_temp;
-- see sql/README.md) and not callable by PUBLIC.
CREATE OR REPLACE FUNCTION pgsearch.search_space(p_dataset_id bigint, p_target text, p_model text)
RETURNS pgsearch.embedding_spaces
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_space   pgsearch.embedding_spaces;
    v_dataset text;
    v_models  text;
    v_count   integer;
    v_default bigint;
BEGIN
    SELECT name, default_model_id INTO v_dataset, v_default FROM pgsearch.datasets WHERE id = p_dataset_id;
    SELECT string_agg(m.name, ', ' ORDER BY m.name), count(*)
      INTO v_models, v_count
      FROM pgsearch.embedding_spaces AS s
      JOIN pgsearch.embedding_models AS m ON m.id = s.model_id
     WHERE s.dataset_id = p_dataset_id AND s.target = p_target;
    IF v_count = 0 THEN
        RAISE EXCEPTION 'dataset "%" has no % embeddings', v_dataset, p_target
            USING ERRCODE = 'no_data_found',
                  HINT = 'compute them first, e.g. pgsearch embed --dataset ' || quote_ident(v_dataset);
    END IF;
    IF p_model IS NULL AND v_count > 1 AND v_default IS NOT NULL THEN
        SELECT s.* INTO v_space FROM pgsearch.embedding_spaces AS s
         WHERE s.dataset_id = p_dataset_id AND s.target = p_target AND s.model_id = v_default;
        IF FOUND THEN
            RETURN v_space;
        END IF;
    END IF;
    IF p_model IS NULL THEN
        IF v_count > 1 THEN
            RAISE EXCEPTION 'dataset "%" has % embeddings from several models: %', v_dataset, p_target, v_models
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'name one, e.g. model => ' || quote_literal(split_part(v_models, ', ', 1));
        END IF;
        SELECT s.* INTO v_space FROM pgsearch.embedding_spaces AS s
         WHERE s.dataset_id = p_dataset_id AND s.target = p_target;
    ELSE
        SELECT s.* INTO v_space
          FROM pgsearch.embedding_spaces AS s
          JOIN pgsearch.embedding_models AS m ON m.id = s.model_id
         WHERE s.dataset_id = p_dataset_id AND s.target = p_target AND m.name = p_model;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'dataset "%" has no % embeddings from model "%"', v_dataset, p_target, p_model
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'models: ' || v_models;
        END IF;
    END IF;
    RETURN v_space;
END $$;

COMMENT ON FUNCTION pgsearch.search_space(bigint, text, text) IS
    'The embedding space a search of a dataset''s assets or shapes uses: the one of the named model, '
    'the only one, or the dataset''s default model''s; an error naming the models otherwise.';
REVOKE EXECUTE ON FUNCTION pgsearch.search_space(bigint, text, text) FROM PUBLIC;
