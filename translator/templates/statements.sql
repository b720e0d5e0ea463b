-- The statements compile_query produces, as SQL: statement.py fills a copy of each (parsed once
-- per process, template.py), and `pgsearch query --sql` prints the result.
--
-- "-- name: X" starts a template. In them:
--   %(name)s       a bound parameter, as in the statement that runs;
--   :name          a slot the builder fills with sqlglot expressions:
--     :columns       the output columns (translator/columns.py);
--     :rows          the rows' table, `pgsearch.assets AS a` or `pgsearch.shapes AS s`, followed by
--                    the joins the filter reads: a shape's label (l) and asset (a), and LEFT JOINs of
--                    the on-demand tables of translator/fields.py JOINS (projection points,
--                    curation results);
--     :output_rows   the same table, followed by the joins the output columns read (a shape's
--                    label and asset);
--     :scope         `a.dataset_id = %(dataset_id)s` (s.dataset_id for shapes);
--     :predicate     the query's condition; without a query it is left out, with its AND;
--     :row_id        `a.id` (s.id);
--     :embedded_id   `e.asset_id` (e.shape_id): the row an embedding belongs to;
--     :partition     the searched space's partition of asset_embeddings or shape_embeddings;
--     :query_vector  the query vector: a bound parameter, or a stored embedding (below);
--     :route, :candidates  the templates of those names, filled;
--   halfvec(dim)   the space's dimension: `e.embedding::halfvec(dim)` is the partition's index
--                  expression, so the HNSW index serves the walk's ORDER BY (the exact path orders by
--                  the function cosine_distance(), which no index answers: a true top k).
-- A search without a filter has no route: the CTE is left out, and with it each condition that
-- reads it. When the query is a stored item (--similar-to), the outer ORDER BY of the nearest-
-- first templates gets one more key between distance and id, `(hits.id <> %(source_asset)s)`
-- (or the filename / shape id), so the item itself comes first among identical copies
-- (statement.py, _source_first). Which template a search takes, and why each part is there: translator/paths.py.


-- name: plain
-- A metadata search: the matching rows in id order.
SELECT :columns
  FROM :rows
 WHERE :scope AND (:predicate)
 ORDER BY :row_id
 LIMIT %(limit)s OFFSET %(offset)s


-- name: nearest
-- Nearest first, when the exact path reads every matching row's vector (shape spaces, small asset
-- vectors): the HNSW walk, then the exact path when the walk came up short. The count conditions
-- are one-time filters: PostgreSQL runs one branch of the UNION ALL.
WITH query_vector AS (SELECT :query_vector AS v),
     route AS MATERIALIZED (:route),
     ann AS MATERIALIZED (
       SELECT :row_id AS id,
              cosine_distance(e.embedding::halfvec(dim), (SELECT v FROM query_vector)) AS distance
         FROM :partition AS e
         JOIN :rows ON :row_id = :embedded_id
        WHERE :scope AND (:predicate) AND NOT (SELECT exact FROM route)
        ORDER BY e.embedding::halfvec(dim) <=> (SELECT v FROM query_vector)
        LIMIT %(k)s)
SELECT :columns, hits.distance AS distance
  FROM (SELECT id, distance FROM ann WHERE (SELECT count(*) FROM ann) >= %(k)s
        UNION ALL
        (SELECT :row_id AS id,
                cosine_distance(e.embedding::halfvec(dim), (SELECT v FROM query_vector)) AS distance
           FROM :partition AS e
           JOIN :rows ON :row_id = :embedded_id
          WHERE :scope AND (:predicate) AND (SELECT count(*) FROM ann) < %(k)s
          ORDER BY distance ASC, :row_id
          LIMIT %(k)s)) AS hits
  JOIN :output_rows ON :row_id = hits.id
 ORDER BY hits.distance ASC, hits.id
 LIMIT %(limit)s OFFSET %(offset)s


-- name: nearest_sketched
-- Nearest first in an asset space with sketches: as `nearest`, but the exact path ranks the
-- matching assets by the Hamming distance of their sketch to the query's (the candidates) and
-- reads the vectors of the best %(rerank)s only, in one index scan (= ANY of an array).
WITH query_vector AS (SELECT :query_vector AS v),
     query_sketch AS (
       SELECT binary_quantize(v - (SELECT s.sketch_center FROM pgsearch.embedding_spaces AS s
                                    WHERE s.id = %(space_id)s)) AS b
         FROM query_vector),
     route AS MATERIALIZED (:route),
     ann AS MATERIALIZED (
       SELECT a.id AS id,
              cosine_distance(e.embedding::halfvec(dim), (SELECT v FROM query_vector)) AS distance
         FROM :partition AS e
         JOIN :rows ON a.id = e.asset_id
        WHERE a.dataset_id = %(dataset_id)s AND (:predicate) AND NOT (SELECT exact FROM route)
        ORDER BY e.embedding::halfvec(dim) <=> (SELECT v FROM query_vector)
        LIMIT %(k)s)
SELECT :columns, hits.distance AS distance
  FROM (SELECT id, distance FROM ann WHERE (SELECT count(*) FROM ann) >= %(k)s
        UNION ALL
        (SELECT e.asset_id AS id,
                cosine_distance(e.embedding::halfvec(dim), (SELECT v FROM query_vector)) AS distance
           FROM :partition AS e
          WHERE e.asset_id = ANY (ARRAY(:candidates))
          ORDER BY distance ASC, e.asset_id
          LIMIT %(k)s)) AS hits
  JOIN pgsearch.assets AS a ON a.id = hits.id
 ORDER BY hits.distance ASC, hits.id
 LIMIT %(limit)s OFFSET %(offset)s


-- name: sketch_candidates
-- The matching assets, read with the filter from the asset rows (or from an index that carries
-- id and sketches, translator/covering.py), best sketches first. Without a query sketch (the
-- space has no centre yet) LIMIT NULL ranks every matching row.
SELECT a.id AS id
  FROM :rows
 WHERE a.dataset_id = %(dataset_id)s AND (:predicate) AND (SELECT count(*) FROM ann) < %(k)s
 ORDER BY hamming_distance(a.sketches[%(space_id)s], (SELECT b FROM query_sketch)) ASC, a.id
 LIMIT CASE WHEN (SELECT b FROM query_sketch) IS NULL THEN NULL ELSE %(rerank)s END


-- name: group_candidates
-- The same for `"NAME" in groups`: the group's members, from the primary key of group_members.
SELECT gm.asset_id AS id
  FROM pgsearch.group_members AS gm
 WHERE gm.dataset_id = %(dataset_id)s AND gm.name = %(group)s AND (SELECT count(*) FROM ann) < %(k)s
 ORDER BY hamming_distance(gm.sketches[%(space_id)s], (SELECT b FROM query_sketch)) ASC, gm.asset_id
 LIMIT CASE WHEN (SELECT b FROM query_sketch) IS NULL THEN NULL ELSE %(rerank)s END


-- name: dissimilar
-- Least similar first: the exact path alone, reading every matching row's vector.
WITH query_vector AS (SELECT :query_vector AS v)
SELECT :columns, hits.distance AS distance
  FROM (SELECT :row_id AS id,
               cosine_distance(e.embedding::halfvec(dim), (SELECT v FROM query_vector)) AS distance
          FROM :partition AS e
          JOIN :rows ON :row_id = :embedded_id
         WHERE :scope AND (:predicate)
         ORDER BY distance DESC NULLS LAST, :row_id
         LIMIT %(k)s) AS hits
  JOIN :output_rows ON :row_id = hits.id
 ORDER BY hits.distance DESC NULLS LAST, hits.id
 LIMIT %(limit)s OFFSET %(offset)s


-- name: route
-- One row, one column `exact`: whether the filter is narrow enough to skip the walk, from a page
-- sample of the rows' table (about %(sample_rows)s rows, the same pages every time: REPEATABLE).
-- Each sampled row stands for tuples / seen rows; reltuples is -1 before the first ANALYZE, and
-- the sample is then the whole table.
SELECT hits * greatest(tuples, seen) / greatest(seen, 1) < %(exact_rows)s
       OR hits * greatest(tuples, seen) / greatest(seen, 1) < %(exact_rows_max)s
          AND hits::float8 / greatest(scoped, 1) < %(exact_share)s AS exact
  FROM (SELECT count(*) FILTER (WHERE :scope AND (:predicate)) AS hits,
               count(*) FILTER (WHERE :scope) AS scoped,
               count(*) AS seen,
               (SELECT reltuples FROM pg_catalog.pg_class WHERE oid = %(sample_table)s::regclass) AS tuples
          FROM :rows
               TABLESAMPLE SYSTEM ((SELECT least(100, %(sample_rows)s * 100.0 / greatest(
                 (SELECT reltuples FROM pg_catalog.pg_class WHERE oid = %(sample_table)s::regclass), 1))))
               REPEATABLE (0)) AS sample


-- name: vector_of_asset
-- The query vector of AssetSource(asset_id=...), and of the other stored sources below.
SELECT q.embedding::halfvec(dim) FROM :partition AS q WHERE q.asset_id = %(source_asset)s


-- name: vector_of_filename
SELECT q.embedding::halfvec(dim)
  FROM :partition AS q
  JOIN pgsearch.assets AS qa ON qa.id = q.asset_id
 WHERE qa.dataset_id = %(dataset_id)s AND qa.filename = %(source_filename)s


-- name: vector_of_shape
SELECT q.embedding::halfvec(dim) FROM :partition AS q WHERE q.shape_id = %(source_shape)s


-- name: shape_rows
-- A shape and the rows its fields read: its label and its asset.
SELECT s.id
  FROM pgsearch.shapes AS s
  JOIN pgsearch.labels AS l ON l.id = s.label_id
  JOIN pgsearch.assets AS a ON a.id = s.asset_id
