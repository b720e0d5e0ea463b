-- Recomputes every sketch of one asset space: write_asset_sketches over all of the dataset's
-- assets, after vectors were written around pgsearch's embedding writer (plain SQL, a restore).
CREATE OR REPLACE FUNCTION pgsearch.refresh_asset_sketches(p_space_id bigint) RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    v_dataset bigint;
BEGIN
    SELECT dataset_id INTO STRICT v_dataset FROM pgsearch.embedding_spaces
     WHERE id = p_space_id AND target = 'asset';
    RETURN pgsearch.write_asset_sketches(
        p_space_id, ARRAY(SELECT id FROM pgsearch.assets WHERE dataset_id = v_dataset));
END $$;

COMMENT ON FUNCTION pgsearch.refresh_asset_sketches(bigint) IS
    'Recomputes assets.sketches (and the copies in group_members) of one asset embedding space '
    'from its vectors, after writes that went around pgsearch; returns the assets changed.';
