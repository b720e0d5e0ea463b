-- Renames a label of a dataset. Label counts are keyed by label name (assets.label_counts), so
-- the assets carrying the label are rewritten in the same transaction. No trigger: the call is
-- the supported way to rename, from pgsearch or from psql (a plain UPDATE of pgsearch.labels
-- leaves the counts under the old name until refresh_label_counts runs for those assets).
CREATE OR REPLACE FUNCTION pgsearch.rename_label(p_dataset_id bigint, p_old text, p_new text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    v_label bigint;
    v_rows  bigint;
BEGIN
    UPDATE pgsearch.labels SET name = p_new
     WHERE dataset_id = p_dataset_id AND name = p_old
    RETURNING id INTO v_label;
    IF v_label IS NULL THEN
        RAISE EXCEPTION 'dataset % has no label %', p_dataset_id, quote_literal(p_old)
            USING ERRCODE = 'no_data_found';
    END IF;
    SELECT count(DISTINCT s.asset_id) INTO v_rows FROM pgsearch.shapes AS s WHERE s.label_id = v_label;
    PERFORM pgsearch.refresh_label_counts(
        ARRAY(SELECT DISTINCT s.asset_id FROM pgsearch.shapes AS s WHERE s.label_id = v_label));
    RETURN v_rows;
END $$;

COMMENT ON FUNCTION pgsearch.rename_label(bigint, text, text) IS
    'Renames a label of a dataset and rewrites the label counts of the assets carrying it; returns '
    'how many assets carry it.';
