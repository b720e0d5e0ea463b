-- Drops a dataset with its embedding partitions (a DELETE alone would leave them, empty).
CREATE OR REPLACE FUNCTION pgsearch.drop_dataset(p_name text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_dataset bigint;
    v_space   bigint;
BEGIN
    SELECT id INTO v_dataset FROM pgsearch.datasets WHERE name = p_name;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    FOR v_space IN SELECT id FROM pgsearch.embedding_spaces WHERE dataset_id = v_dataset LOOP
        PERFORM pgsearch.drop_embedding_space(v_space);
    END LOOP;
    -- One DELETE of the memberships rather than one foreign-key action per asset.
    DELETE FROM pgsearch.group_members WHERE dataset_id = v_dataset;
    DELETE FROM pgsearch.datasets WHERE id = v_dataset;
    RETURN true;
END $$;

COMMENT ON FUNCTION pgsearch.drop_dataset(text) IS
    'Deletes a dataset with its assets, shapes and embedding partitions; false when it does not exist.';
