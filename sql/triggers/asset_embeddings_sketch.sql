-- Asset sketches: assets.sketches[space_id] = binary_quantize(embedding - sketch_center) of that
-- space's vector, kept by these triggers on asset_embeddings and on each asset space's partition.
--
-- Why: a similarity search under a narrow filter (about 1% of a dataset) is answered exactly from
-- the matching rows (translator/statement.py). Reading each matching row's vector from the
-- embeddings partition costs a primary-key descent and a page per row, about twice what reading
-- the asset row for the filter costs. With the sketch in the asset row, the rows the filter reads
-- are ranked by Hamming distance to the query's sketch on the spot, and only the best few hundred
-- to few thousand are looked up and ranked by their true cosine distance.
--
-- The bit array is indexed by embedding space id, which is never reused, so a sketch left behind
-- by a dropped space can never be read as another space's. sketch_center is the mean of the first
-- vectors written to the space; centring makes the bits informative for embeddings that all lean
-- the same way (CLIP image embeddings sit in a narrow cone). It is fixed once set, so every sketch
-- of a space and every query sketch use the same one.
--
-- The function writes the sketches of the rows in new_rows (INSERT, UPDATE) and clears those of
-- rows that left (DELETE, or an UPDATE that moved a vector to another asset). One UPDATE per
-- space per statement, so a COPY of 10,000 vectors rewrites 10,000 asset rows once.
CREATE OR REPLACE FUNCTION pgsearch.asset_embeddings_sketch() RETURNS trigger
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

COMMENT ON FUNCTION pgsearch.asset_embeddings_sketch() IS
    'Trigger function of sketch_insert / sketch_update / sketch_delete on asset_embeddings and its '
    'partitions: keeps assets.sketches (and sets the space''s sketch_center on its first vectors).';

-- The triggers (add_sketch_triggers) on the parent and on every asset space's partition, where
-- they are missing: ensure_embedding_space adds them to a partition it creates, and
-- `pgsearch db upgrade` drops pgsearch's triggers before it applies these files again.
SELECT pgsearch.add_sketch_triggers(t.name)
  FROM (SELECT 'asset_embeddings' AS name
        UNION ALL
        SELECT s.table_name FROM pgsearch.embedding_spaces AS s WHERE s.target = 'asset') AS t
 WHERE NOT EXISTS (SELECT 1 FROM pg_trigger AS g
                    WHERE g.tgrelid = to_regclass(format('pgsearch.%I', t.name))
                      AND g.tgname = 'sketch_insert');
