-- Asset sketches: assets.sketches[space_id] = binary_quantize(embedding - sketch_center) of that
-- space's vector, with the same value copied into the asset's group_members rows.
--
-- Why they exist: a similarity search under a narrow filter is answered exactly from the matching
-- rows (translator/paths.py). The rows the filter reads are ranked by the Hamming distance of
-- their sketch to the query's on the spot, and only the best few hundred to few thousand are
-- looked up and ranked by their true distance. The sketch sits next to each filter's key (the
-- asset row, the status and field indexes that INCLUDE it, group_members' primary key) because
-- reading it from anywhere else costs a lookup per matching row (bench/README.md).
--
-- Who writes them: the one embedding writer (loader/vectors.py), with the vectors it writes, in
-- the same transaction; the loader puts the sketches of new assets straight into their COPY
-- (loader/sketches.py computes the same bits in numpy). No trigger. A writer going around
-- pgsearch calls this function for the assets whose vectors it changed.
--
-- The bit array is indexed by embedding space id, which is never reused, so a sketch left behind
-- by a dropped space can never be read as another space's. sketch_center is the mean of the first
-- vectors written to the space; centring makes the bits informative for embeddings that all lean
-- the same way (CLIP image embeddings sit in a narrow cone). It is fixed once set, so every
-- sketch of a space and every query sketch use the same one.
CREATE OR REPLACE FUNCTION pgsearch.write_asset_sketches(p_space_id bigint, p_asset_ids bigint[])
RETURNS bigint
LANGUAGE plpgsql
-- Callable from any session (a writer going around pgsearch): binary_quantize and halfvec's
-- operators resolve on the path the objects were applied with (sql/README.md).
SET search_path FROM CURRENT AS $$
DECLARE
    s        pgsearch.embedding_spaces;
    v_center halfvec;
    v_set    bigint;
BEGIN
    SELECT * INTO STRICT s FROM pgsearch.embedding_spaces WHERE id = p_space_id AND target = 'asset';
    IF s.sketch_center IS NULL THEN
        -- (Only when these assets have vectors: no row version, no lock, for a batch that wrote none.)
        EXECUTE format('SELECT avg(embedding) FROM pgsearch.%I WHERE asset_id = ANY ($1)', s.table_name)
            INTO v_center USING p_asset_ids;
        IF v_center IS NOT NULL THEN
            UPDATE pgsearch.embedding_spaces SET sketch_center = v_center
             WHERE id = p_space_id AND sketch_center IS NULL;
        END IF;
    END IF;
    -- The sketch of each given asset's vector, or NULL where it has none (any more) in the space;
    -- rows whose sketch is already right are left alone (no new row version).
    EXECUTE format(
        'WITH wanted AS ('
        '  SELECT a.id, '
        '         (SELECT binary_quantize(e.embedding - c.sketch_center)::varbit '
        '            FROM pgsearch.%I AS e, pgsearch.embedding_spaces AS c '
        '           WHERE c.id = $1 AND e.asset_id = a.id) AS sketch '
        '    FROM pgsearch.assets AS a WHERE a.id = ANY ($2)), '
        'changed AS ('
        '  UPDATE pgsearch.assets AS a SET sketches[$1] = w.sketch '
        '    FROM wanted AS w '
        '   WHERE a.id = w.id AND a.sketches[$1] IS DISTINCT FROM w.sketch '
        '     AND (w.sketch IS NOT NULL OR a.sketches IS NOT NULL) '
        '  RETURNING a.id, a.dataset_id, a.sketches), '
        'members AS ('
        '  UPDATE pgsearch.group_members AS m SET sketches = c.sketches '
        '    FROM changed AS c '
        '   WHERE m.dataset_id = c.dataset_id AND m.asset_id = c.id) '
        'SELECT count(*) FROM changed',
        s.table_name)
        INTO v_set
        USING p_space_id, p_asset_ids;
    RETURN v_set;
END $$;

COMMENT ON FUNCTION pgsearch.write_asset_sketches(bigint, bigint[]) IS
    'Writes assets.sketches[space] (and the copies in group_members) of the given assets from their '
    'vectors in the space, NULL where they have none; sets the space''s sketch_center from these '
    'vectors when it has none. Called by pgsearch''s embedding writer; a writer going around pgsearch '
    'calls it for the assets whose vectors it changed. Returns the assets changed.';
