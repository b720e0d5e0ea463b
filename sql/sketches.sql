-- Asset sketches: a 1-bit-per-dimension copy of each asset vector, kept in the asset row.
-- Applied by migrations/versions/0003_asset_sketches.py.
--
-- Why: a similarity search under a narrow filter (about 1% of a dataset) is answered exactly from
-- the matching rows (translator/statement.py). Reading each matching row's vector from the
-- embeddings partition costs a primary-key descent and a page per row, about twice what reading
-- the asset row for the filter costs. With the sketch in the asset row, the rows the filter reads
-- are ranked by Hamming distance to the query's sketch on the spot, and only the best few hundred
-- to few thousand are looked up and ranked by their true cosine distance.
--
-- sketches[space_id] = binary_quantize(embedding - sketch_center) of that space's vector: the bit
-- array is indexed by embedding space id, which is never reused, so a sketch left behind by a
-- dropped space can never be read as another space's. sketch_center is the mean of the first
-- vectors written to the space; centring makes the bits informative for embeddings that all lean
-- the same way (CLIP image embeddings sit in a narrow cone). It is fixed once set, so every
-- sketch of a space and every query sketch use the same one.

ALTER TABLE pgsearch.assets ADD COLUMN sketches varbit[];
COMMENT ON COLUMN pgsearch.assets.sketches IS
    'Per embedding space id: sign bits of the asset vector minus the space''s sketch_center. '
    'Kept by triggers on asset_embeddings; used to pre-rank rows under selective filters.';

ALTER TABLE pgsearch.embedding_spaces ADD COLUMN sketch_center halfvec;
COMMENT ON COLUMN pgsearch.embedding_spaces.sketch_center IS
    'Mean of the first vectors written to the space (asset spaces): the origin of assets.sketches.';

-- Writes the sketches of the rows in new_rows (INSERT, UPDATE) and clears those of rows that left
-- (DELETE, or an UPDATE that moved a vector to another asset). One UPDATE per space per statement,
-- so a COPY of 10,000 vectors rewrites 10,000 asset rows once.
CREATE FUNCTION pgsearch.asset_embeddings_sketch() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_space bigint;
BEGIN
    -- (new_rows exists only in INSERT and UPDATE triggers, old_rows in UPDATE and DELETE ones.)
    IF TG_OP = 'DELETE' THEN
        FOR v_space IN SELECT DISTINCT o.space_id FROM old_rows AS o LOOP
            UPDATE pgsearch.assets AS a SET sketches[v_space] = NULL
              FROM old_rows AS o
             WHERE o.space_id = v_space AND a.id = o.asset_id AND a.sketches[v_space] IS NOT NULL;
        END LOOP;
    ELSIF TG_OP = 'UPDATE' THEN
        FOR v_space IN SELECT DISTINCT o.space_id FROM old_rows AS o LOOP
            UPDATE pgsearch.assets AS a SET sketches[v_space] = NULL
              FROM old_rows AS o
             WHERE o.space_id = v_space AND a.id = o.asset_id AND a.sketches[v_space] IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM new_rows AS n
                                WHERE n.space_id = v_space AND n.asset_id = o.asset_id);
        END LOOP;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        FOR v_space IN SELECT DISTINCT n.space_id FROM new_rows AS n LOOP
            UPDATE pgsearch.embedding_spaces AS s
               SET sketch_center = (SELECT avg(n.embedding) FROM new_rows AS n WHERE n.space_id = v_space)
             WHERE s.id = v_space AND s.sketch_center IS NULL;
            UPDATE pgsearch.assets AS a
               SET sketches[v_space] = binary_quantize(n.embedding - s.sketch_center)::varbit
              FROM new_rows AS n, pgsearch.embedding_spaces AS s
             WHERE n.space_id = v_space AND s.id = v_space AND a.id = n.asset_id;
        END LOOP;
    END IF;
    RETURN NULL;
END $$;

-- Statement triggers see only the table the statement names: writes through the parent fire the
-- parent's, writes straight into a partition (the loader's COPY) fire the partition's.
CREATE FUNCTION pgsearch.add_sketch_triggers(p_table text) RETURNS void
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

SELECT pgsearch.add_sketch_triggers('asset_embeddings');

-- Recomputes every sketch of one asset space (after writes that bypassed the triggers, e.g. with
-- session_replication_role = replica). Keeps the centre when it is set.
CREATE FUNCTION pgsearch.refresh_asset_sketches(p_space_id bigint) RETURNS bigint
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

-- ensure_embedding_space as in schema_v1.sql, plus the sketch triggers on a new asset partition.
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
    IF p_target = 'asset' THEN
        PERFORM pgsearch.add_sketch_triggers(v_name);
    END IF;
    RETURN v_id;
END $$;

-- Spaces that existed before this migration: triggers on their partitions, and their sketches.
DO $$
DECLARE
    s pgsearch.embedding_spaces;
BEGIN
    FOR s IN SELECT * FROM pgsearch.embedding_spaces WHERE target = 'asset' ORDER BY id LOOP
        PERFORM pgsearch.add_sketch_triggers(s.table_name);
        PERFORM pgsearch.refresh_asset_sketches(s.id);
    END LOOP;
END $$;
