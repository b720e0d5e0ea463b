-- Recomputes every sketch of one asset space (after writes that bypassed the triggers, e.g. with
-- session_replication_role = replica). Keeps the centre when it is set.
CREATE OR REPLACE FUNCTION pgsearch.refresh_asset_sketches(p_space_id bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    s     pgsearch.embedding_spaces;
    v_set bigint;
BEGIN
    SELECT * INTO STRICT s FROM pgsearch.embedding_spaces WHERE id = p_space_id AND target = 'asset';
    IF s.sketch_center IS NULL THEN
        EXECUTE format('UPDATE pgsearch.embedding_spaces SET sketch_center = '
                       '(SELECT avg(embedding) FROM pgsearch.%I) WHERE id = $1', s.table_name)
            USING p_space_id;
    END IF;
    EXECUTE format('UPDATE pgsearch.assets AS a SET sketches[$1] = binary_quantize(e.embedding - s.sketch_center)::varbit '
                   'FROM pgsearch.%I AS e, pgsearch.embedding_spaces AS s '
                   'WHERE s.id = $1 AND a.id = e.asset_id '
                   'AND a.sketches[$1] IS DISTINCT FROM binary_quantize(e.embedding - s.sketch_center)::varbit',
                   s.table_name)
        USING p_space_id;
    GET DIAGNOSTICS v_set = ROW_COUNT;
    RETURN v_set;
END $$;

COMMENT ON FUNCTION pgsearch.refresh_asset_sketches(bigint) IS
    'Recomputes assets.sketches of one asset embedding space (after writes that bypassed the '
    'triggers); returns the rows changed.';
