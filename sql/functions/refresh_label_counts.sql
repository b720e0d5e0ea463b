-- Per-asset label counts, recomputed from shapes for the assets given: assets.label_counts and
-- annotation_count are derived from shapes and written by whoever changes shapes. The loader
-- COPYs a new asset's counts with its row and calls this for existing assets whose shapes a
-- batch replaced (one UPDATE per batch); rename_label calls it; a writer going around pgsearch
-- (plain SQL on shapes) calls it for the assets it touched. No trigger: for 50,000 new assets
-- with 3 shapes each, the shapes COPY took 3.5 s with 0.1's statement triggers and 2.2-2.3 s
-- without them, the counts COPYed with the asset rows (bench/README.md).
CREATE OR REPLACE FUNCTION pgsearch.refresh_label_counts(asset_ids bigint[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE pgsearch.assets AS a
       SET label_counts = coalesce(c.counts, '{}'::jsonb),
           annotation_count = coalesce(c.total, 0)
      FROM (SELECT ids.id, agg.counts, agg.total
              FROM (SELECT DISTINCT unnest(asset_ids) AS id) AS ids
              LEFT JOIN LATERAL (
                  SELECT jsonb_object_agg(l.name, per.n) AS counts, sum(per.n)::integer AS total
                    FROM (SELECT s.label_id, count(*) AS n
                            FROM pgsearch.shapes AS s
                           WHERE s.asset_id = ids.id
                           GROUP BY s.label_id) AS per
                    JOIN pgsearch.labels AS l ON l.id = per.label_id
              ) AS agg ON true) AS c
     WHERE a.id = c.id
       -- rows already right (the loader writes a new asset's counts with it) keep their version
       AND (a.label_counts IS DISTINCT FROM coalesce(c.counts, '{}'::jsonb)
            OR a.annotation_count IS DISTINCT FROM coalesce(c.total, 0))
$$;

COMMENT ON FUNCTION pgsearch.refresh_label_counts(bigint[]) IS
    'Recomputes assets.label_counts and annotation_count of the given assets from their shapes '
    '(called by pgsearch''s loader and rename_label; writers going around pgsearch call it for the '
    'assets whose shapes they changed).';
