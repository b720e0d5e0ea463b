-- pgsearch SQL surface: flat views and search functions for psql and BI tools.
-- Applied by migrations/versions/0002_sql_surface.py; reversed by views_down.sql.
--
-- Names: views are v_<what>, so they sort together in a BI tool's table list and never clash with
-- the tables they read (pgsearch.assets vs pgsearch.v_assets). Ids are called <thing>_id in every
-- view and function result, so results join with USING (asset_id) / USING (shape_id).
-- The views read the partitioned parents and the spaces table, never a partition by name, so a new
-- embedding space needs no view DDL.

CREATE VIEW pgsearch.v_assets AS
SELECT a.id               AS asset_id,
       d.name             AS dataset,
       a.filename,
       a.path,
       a.width,
       a.height,
       a.size             AS size_bytes,
       a.format,
       a.status,
       a.groups,
       a.metadata,
       a.label_counts,
       a.annotation_count,
       a.load_error,
       a.content_hash,
       a.created_at,
       a.updated_at,
       pp.x               AS projection_x,
       pp.y               AS projection_y,
       pp.cluster,
       a.dataset_id
  FROM pgsearch.assets AS a
  JOIN pgsearch.datasets AS d ON d.id = a.dataset_id
  -- The newest asset run per dataset, computed once per query rather than once per asset row.
  LEFT JOIN (SELECT DISTINCT ON (r.dataset_id) r.dataset_id, r.id
               FROM pgsearch.projection_runs AS r
              WHERE r.target = 'asset'
              ORDER BY r.dataset_id, r.id DESC) AS latest_run ON latest_run.dataset_id = a.dataset_id
  LEFT JOIN pgsearch.projection_points AS pp ON pp.run_id = latest_run.id AND pp.item_id = a.id;

COMMENT ON VIEW pgsearch.v_assets IS
    'One row per asset (image) of every dataset, with its annotation summary and its point in the '
    'dataset''s latest asset projection. Filter on dataset.';
COMMENT ON COLUMN pgsearch.v_assets.asset_id IS 'Asset id (pgsearch.assets.id); stable, unique across datasets.';
COMMENT ON COLUMN pgsearch.v_assets.dataset IS 'Name of the dataset the asset belongs to.';
COMMENT ON COLUMN pgsearch.v_assets.filename IS 'File name, unique within the dataset.';
COMMENT ON COLUMN pgsearch.v_assets.path IS 'Source path or URI of the image as loaded.';
COMMENT ON COLUMN pgsearch.v_assets.width IS 'Image width in pixels (NULL when the file could not be decoded).';
COMMENT ON COLUMN pgsearch.v_assets.height IS 'Image height in pixels (NULL when the file could not be decoded).';
COMMENT ON COLUMN pgsearch.v_assets.size_bytes IS 'File size in bytes.';
COMMENT ON COLUMN pgsearch.v_assets.format IS 'Image format, e.g. JPEG, PNG.';
COMMENT ON COLUMN pgsearch.v_assets.status IS
    'Annotation status: none, annotated, review, to_fix, completed, or a custom string.';
COMMENT ON COLUMN pgsearch.v_assets.groups IS
    'Groups (tags, splits) the asset is in, as a text array; see v_asset_groups for one row per group.';
COMMENT ON COLUMN pgsearch.v_assets.metadata IS 'Free-form user metadata (JSON object).';
COMMENT ON COLUMN pgsearch.v_assets.label_counts IS
    'Shapes per label on the asset as a JSON object {label: count}; see v_label_counts for long form.';
COMMENT ON COLUMN pgsearch.v_assets.annotation_count IS 'Total number of shapes (annotations) on the asset.';
COMMENT ON COLUMN pgsearch.v_assets.load_error IS 'Why the file could not be decoded; NULL for a good asset.';
COMMENT ON COLUMN pgsearch.v_assets.content_hash IS 'Hash of the file content (finds exact duplicates).';
COMMENT ON COLUMN pgsearch.v_assets.created_at IS 'When the asset was first loaded.';
COMMENT ON COLUMN pgsearch.v_assets.updated_at IS 'When the asset row last changed.';
COMMENT ON COLUMN pgsearch.v_assets.projection_x IS
    'x of the asset in the dataset''s latest 2-D projection (UMAP); NULL when not projected.';
COMMENT ON COLUMN pgsearch.v_assets.projection_y IS
    'y of the asset in the dataset''s latest 2-D projection (UMAP); NULL when not projected.';
COMMENT ON COLUMN pgsearch.v_assets.cluster IS
    'Cluster id in the dataset''s latest projection (DBSCAN; -1 is noise); NULL when not projected.';
COMMENT ON COLUMN pgsearch.v_assets.dataset_id IS 'Dataset id (pgsearch.datasets.id).';


CREATE VIEW pgsearch.v_shapes AS
SELECT s.id          AS shape_id,
       d.name        AS dataset,
       s.asset_id,
       a.filename,
       a.path,
       l.name        AS label,
       s.kind,
       s.bbox_x,
       s.bbox_y,
       s.bbox_width,
       s.bbox_height,
       s.area,
       s.attributes,
       s.geometry,
       a.status      AS asset_status,
       s.created_at,
       s.dataset_id
  FROM pgsearch.shapes AS s
  JOIN pgsearch.assets AS a ON a.id = s.asset_id
  JOIN pgsearch.labels AS l ON l.id = s.label_id
  JOIN pgsearch.datasets AS d ON d.id = s.dataset_id;

COMMENT ON VIEW pgsearch.v_shapes IS
    'One row per shape (annotation: box, polygon, mask or tag) with its label and its asset''s file.';
COMMENT ON COLUMN pgsearch.v_shapes.shape_id IS 'Shape id (pgsearch.shapes.id).';
COMMENT ON COLUMN pgsearch.v_shapes.dataset IS 'Name of the dataset the shape belongs to.';
COMMENT ON COLUMN pgsearch.v_shapes.asset_id IS 'Id of the asset (image) the shape is drawn on.';
COMMENT ON COLUMN pgsearch.v_shapes.filename IS 'File name of the asset the shape is drawn on.';
COMMENT ON COLUMN pgsearch.v_shapes.path IS 'Source path or URI of the asset''s image.';
COMMENT ON COLUMN pgsearch.v_shapes.label IS 'Label (class) name.';
COMMENT ON COLUMN pgsearch.v_shapes.kind IS 'Shape kind: bbox, polygon, mask or tag.';
COMMENT ON COLUMN pgsearch.v_shapes.bbox_x IS 'Left edge of the bounding box in pixels; NULL for a tag.';
COMMENT ON COLUMN pgsearch.v_shapes.bbox_y IS 'Top edge of the bounding box in pixels; NULL for a tag.';
COMMENT ON COLUMN pgsearch.v_shapes.bbox_width IS 'Bounding box width in pixels; NULL for a tag.';
COMMENT ON COLUMN pgsearch.v_shapes.bbox_height IS 'Bounding box height in pixels; NULL for a tag.';
COMMENT ON COLUMN pgsearch.v_shapes.area IS 'Area in square pixels (of the polygon or mask, else of the box).';
COMMENT ON COLUMN pgsearch.v_shapes.attributes IS 'Free-form shape attributes (JSON object), e.g. occluded.';
COMMENT ON COLUMN pgsearch.v_shapes.geometry IS
    'Exact geometry: {"points": ...} for a polygon, {"rle": ...} for a mask, {} for a box or tag.';
COMMENT ON COLUMN pgsearch.v_shapes.asset_status IS 'Annotation status of the shape''s asset.';
COMMENT ON COLUMN pgsearch.v_shapes.created_at IS 'When the shape was loaded.';
COMMENT ON COLUMN pgsearch.v_shapes.dataset_id IS 'Dataset id (pgsearch.datasets.id).';


CREATE VIEW pgsearch.v_label_counts AS
SELECT d.name               AS dataset,
       a.id                 AS asset_id,
       a.filename,
       c.label,
       c.count::integer     AS count,
       a.dataset_id
  FROM pgsearch.assets AS a
  JOIN pgsearch.datasets AS d ON d.id = a.dataset_id
 CROSS JOIN LATERAL jsonb_each_text(a.label_counts) AS c(label, count);

COMMENT ON VIEW pgsearch.v_label_counts IS
    'Label counts in long form: one row per (asset, label present on it) with the number of shapes. '
    'Labels absent from an asset have no row (count 0).';
COMMENT ON COLUMN pgsearch.v_label_counts.dataset IS 'Name of the dataset.';
COMMENT ON COLUMN pgsearch.v_label_counts.asset_id IS 'Asset id.';
COMMENT ON COLUMN pgsearch.v_label_counts.filename IS 'File name of the asset.';
COMMENT ON COLUMN pgsearch.v_label_counts.label IS 'Label name.';
COMMENT ON COLUMN pgsearch.v_label_counts.count IS 'Number of shapes with this label on the asset (at least 1).';
COMMENT ON COLUMN pgsearch.v_label_counts.dataset_id IS 'Dataset id.';


CREATE VIEW pgsearch.v_asset_groups AS
SELECT d.name      AS dataset,
       a.id        AS asset_id,
       a.filename,
       g.group_name,
       a.dataset_id
  FROM pgsearch.assets AS a
  JOIN pgsearch.datasets AS d ON d.id = a.dataset_id
 CROSS JOIN LATERAL unnest(a.groups) AS g(group_name);

COMMENT ON VIEW pgsearch.v_asset_groups IS
    'Asset groups in long form: one row per (asset, group it is in). Assets in no group have no row.';
COMMENT ON COLUMN pgsearch.v_asset_groups.dataset IS 'Name of the dataset.';
COMMENT ON COLUMN pgsearch.v_asset_groups.asset_id IS 'Asset id.';
COMMENT ON COLUMN pgsearch.v_asset_groups.filename IS 'File name of the asset.';
COMMENT ON COLUMN pgsearch.v_asset_groups.group_name IS 'Group name (tag, split, ...).';
COMMENT ON COLUMN pgsearch.v_asset_groups.dataset_id IS 'Dataset id.';


CREATE VIEW pgsearch.v_projections AS
SELECT r.id          AS run_id,
       d.name        AS dataset,
       r.target,
       m.name        AS model,
       r.method,
       r.params,
       r.created_at  AS run_created_at,
       p.item_id,
       p.x,
       p.y,
       p.cluster,
       r.id = latest.id AS is_latest,
       r.dataset_id
  FROM pgsearch.projection_runs AS r
  JOIN (SELECT r2.dataset_id, r2.target, max(r2.id) AS id
          FROM pgsearch.projection_runs AS r2
         GROUP BY r2.dataset_id, r2.target) AS latest
    ON latest.dataset_id = r.dataset_id AND latest.target = r.target
  JOIN pgsearch.projection_points AS p ON p.run_id = r.id
  JOIN pgsearch.datasets AS d ON d.id = r.dataset_id
  LEFT JOIN pgsearch.embedding_spaces AS s ON s.id = r.space_id
  LEFT JOIN pgsearch.embedding_models AS m ON m.id = s.model_id;

COMMENT ON VIEW pgsearch.v_projections IS
    'One row per point of every 2-D projection run (UMAP coordinates and DBSCAN cluster) of assets '
    'or shapes. Join item_id to v_assets.asset_id or v_shapes.shape_id according to target.';
COMMENT ON COLUMN pgsearch.v_projections.run_id IS 'Projection run id; a new run per projection computed.';
COMMENT ON COLUMN pgsearch.v_projections.dataset IS 'Name of the dataset.';
COMMENT ON COLUMN pgsearch.v_projections.target IS 'What was projected: asset or shape.';
COMMENT ON COLUMN pgsearch.v_projections.model IS 'Embedding model whose vectors were projected.';
COMMENT ON COLUMN pgsearch.v_projections.method IS 'Projection method, e.g. umap.';
COMMENT ON COLUMN pgsearch.v_projections.params IS 'Parameters of the run (JSON).';
COMMENT ON COLUMN pgsearch.v_projections.run_created_at IS 'When the run was computed.';
COMMENT ON COLUMN pgsearch.v_projections.item_id IS 'Asset id (target asset) or shape id (target shape).';
COMMENT ON COLUMN pgsearch.v_projections.x IS 'x coordinate in the 2-D map.';
COMMENT ON COLUMN pgsearch.v_projections.y IS 'y coordinate in the 2-D map.';
COMMENT ON COLUMN pgsearch.v_projections.cluster IS 'Cluster id (DBSCAN; -1 is noise); NULL when not clustered.';
COMMENT ON COLUMN pgsearch.v_projections.is_latest IS
    'True for the newest run of its dataset and target (the one v_assets shows).';
COMMENT ON COLUMN pgsearch.v_projections.dataset_id IS 'Dataset id.';


-- ---------------------------------------------------------------------------------------------
-- Search functions.
--
-- Each (dataset, model, target) space keeps its vectors in its own partition with an HNSW index on
-- (embedding::halfvec(dim)) halfvec_cosine_ops, so the nearest-neighbour query is dynamic SQL on
-- that partition, ordered by exactly the indexed expression. Iterative scan keeps the index
-- walking until LIMIT is met; when it still comes up short (a k beyond hnsw.max_scan_tuples,
-- or a partition smaller than k), an exact scan answers instead: exactly k rows whenever k exist.

-- The space searched for (dataset, target, model); model may be NULL when the dataset has one.
CREATE FUNCTION pgsearch.search_space(p_dataset_id bigint, p_target text, p_model text)
RETURNS pgsearch.embedding_spaces
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_space   pgsearch.embedding_spaces;
    v_dataset text;
    v_models  text;
    v_count   integer;
BEGIN
    SELECT name INTO v_dataset FROM pgsearch.datasets WHERE id = p_dataset_id;
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

-- The stored vector of one asset or shape in a space; an error when it has none.
CREATE FUNCTION pgsearch.item_embedding(p_space pgsearch.embedding_spaces, p_item_id bigint)
RETURNS halfvec
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_vector halfvec;
BEGIN
    EXECUTE format('SELECT e.embedding FROM pgsearch.%I AS e WHERE e.%I = $1',
                   p_space.table_name, p_space.target || '_id')
       INTO v_vector USING p_item_id;
    IF v_vector IS NULL THEN
        RAISE EXCEPTION '% % has no embedding from this model yet', p_space.target, p_item_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'see its embedding state with pgsearch status, or compute it with pgsearch embed';
    END IF;
    RETURN v_vector;
END $$;

-- The k items of a space nearest to p_query (or, with p_farthest, farthest from it: the nearest to
-- -p_query under cosine, so the same index serves), without p_exclude. distance is always the
-- cosine distance to p_query itself. Rows come unordered; callers order by distance.
CREATE FUNCTION pgsearch.nearest_in_space(p_space_id bigint, p_query halfvec, p_k integer,
                                          p_exclude bigint DEFAULT NULL, p_farthest boolean DEFAULT false)
RETURNS TABLE (item_id bigint, distance double precision)
LANGUAGE plpgsql STABLE
-- Function-level SET: restored when the function returns, so a caller's session is untouched.
SET hnsw.iterative_scan = 'relaxed_order'
SET hnsw.ef_search = '100'
SET hnsw.max_scan_tuples = '20000'
AS $$
DECLARE
    v_space pgsearch.embedding_spaces;
    v_probe halfvec;
    v_ids   bigint[];
    v_dists double precision[];
    v_ann   text;
    v_exact text;
BEGIN
    IF p_k IS NULL OR p_k < 0 THEN
        RAISE EXCEPTION 'k must be a number of rows >= 0, not %', coalesce(p_k::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO STRICT v_space FROM pgsearch.embedding_spaces WHERE id = p_space_id;
    IF vector_dims(p_query) <> v_space.dim THEN
        RAISE EXCEPTION 'the query vector has % dimensions; this model''s embeddings have %',
                        vector_dims(p_query), v_space.dim
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_k = 0 THEN
        RETURN;
    END IF;
    v_probe := CASE WHEN p_farthest THEN p_query * array_fill(-1, ARRAY[v_space.dim])::halfvec
                    ELSE p_query END;
    -- A candidate list of at least k (capped by pgvector's maximum); iterative scan goes beyond.
    PERFORM set_config('hnsw.ef_search', least(greatest(p_k + 1, 100), 1000)::text, true);
    -- ORDER BY is the indexed expression verbatim, so the HNSW index serves it.
    v_ann := format(
        'SELECT array_agg(n.item_id), array_agg((n.v <=> $1)::double precision)
           FROM (SELECT e.%3$I AS item_id, e.embedding::halfvec(%1$s) AS v
                   FROM pgsearch.%2$I AS e
                  WHERE e.%3$I IS DISTINCT FROM $3
                  ORDER BY e.embedding::halfvec(%1$s) <=> $2
                  LIMIT $4) AS n',
        v_space.dim, v_space.table_name, v_space.target || '_id');
    EXECUTE v_ann INTO v_ids, v_dists USING p_query, v_probe, p_exclude, p_k;
    IF coalesce(cardinality(v_ids), 0) < p_k THEN
        -- Short: an expression the index cannot serve makes this an exact scan.
        v_exact := format(
            'SELECT array_agg(n.item_id), array_agg((n.v <=> $1)::double precision)
               FROM (SELECT e.%2$I AS item_id, e.embedding AS v
                       FROM pgsearch.%1$I AS e
                      WHERE e.%2$I IS DISTINCT FROM $3
                      ORDER BY (e.embedding <=> $2) + 0
                      LIMIT $4) AS n',
            v_space.table_name, v_space.target || '_id');
        EXECUTE v_exact INTO v_ids, v_dists USING p_query, v_probe, p_exclude, p_k;
    END IF;
    RETURN QUERY SELECT u.item_id, u.distance FROM unnest(v_ids, v_dists) AS u(item_id, distance);
END $$;

CREATE FUNCTION pgsearch.similar_assets(query_asset_id bigint, k integer DEFAULT 10, model text DEFAULT NULL)
RETURNS TABLE (asset_id bigint, filename text, path text, distance double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
    v_dataset bigint;
    v_space   pgsearch.embedding_spaces;
BEGIN
    SELECT a.dataset_id INTO v_dataset FROM pgsearch.assets AS a WHERE a.id = query_asset_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'asset % does not exist', query_asset_id USING ERRCODE = 'no_data_found';
    END IF;
    v_space := pgsearch.search_space(v_dataset, 'asset', model);
    RETURN QUERY
        SELECT a.id, a.filename, a.path, n.distance
          FROM pgsearch.nearest_in_space(v_space.id, pgsearch.item_embedding(v_space, query_asset_id),
                                         k, query_asset_id, false) AS n
          JOIN pgsearch.assets AS a ON a.id = n.item_id
         ORDER BY n.distance, a.id;
END $$;

CREATE FUNCTION pgsearch.dissimilar_assets(query_asset_id bigint, k integer DEFAULT 10, model text DEFAULT NULL)
RETURNS TABLE (asset_id bigint, filename text, path text, distance double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
    v_dataset bigint;
    v_space   pgsearch.embedding_spaces;
BEGIN
    SELECT a.dataset_id INTO v_dataset FROM pgsearch.assets AS a WHERE a.id = query_asset_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'asset % does not exist', query_asset_id USING ERRCODE = 'no_data_found';
    END IF;
    v_space := pgsearch.search_space(v_dataset, 'asset', model);
    RETURN QUERY
        SELECT a.id, a.filename, a.path, n.distance
          FROM pgsearch.nearest_in_space(v_space.id, pgsearch.item_embedding(v_space, query_asset_id),
                                         k, query_asset_id, true) AS n
          JOIN pgsearch.assets AS a ON a.id = n.item_id
         ORDER BY n.distance DESC, a.id;
END $$;

CREATE FUNCTION pgsearch.similar_shapes(query_shape_id bigint, k integer DEFAULT 10, model text DEFAULT NULL)
RETURNS TABLE (shape_id bigint, asset_id bigint, filename text, label text, distance double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
    v_dataset bigint;
    v_space   pgsearch.embedding_spaces;
BEGIN
    SELECT s.dataset_id INTO v_dataset FROM pgsearch.shapes AS s WHERE s.id = query_shape_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'shape % does not exist', query_shape_id USING ERRCODE = 'no_data_found';
    END IF;
    v_space := pgsearch.search_space(v_dataset, 'shape', model);
    RETURN QUERY
        SELECT s.id, s.asset_id, a.filename, l.name, n.distance
          FROM pgsearch.nearest_in_space(v_space.id, pgsearch.item_embedding(v_space, query_shape_id),
                                         k, query_shape_id, false) AS n
          JOIN pgsearch.shapes AS s ON s.id = n.item_id
          JOIN pgsearch.assets AS a ON a.id = s.asset_id
          JOIN pgsearch.labels AS l ON l.id = s.label_id
         ORDER BY n.distance, s.id;
END $$;

CREATE FUNCTION pgsearch.dissimilar_shapes(query_shape_id bigint, k integer DEFAULT 10, model text DEFAULT NULL)
RETURNS TABLE (shape_id bigint, asset_id bigint, filename text, label text, distance double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
    v_dataset bigint;
    v_space   pgsearch.embedding_spaces;
BEGIN
    SELECT s.dataset_id INTO v_dataset FROM pgsearch.shapes AS s WHERE s.id = query_shape_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'shape % does not exist', query_shape_id USING ERRCODE = 'no_data_found';
    END IF;
    v_space := pgsearch.search_space(v_dataset, 'shape', model);
    RETURN QUERY
        SELECT s.id, s.asset_id, a.filename, l.name, n.distance
          FROM pgsearch.nearest_in_space(v_space.id, pgsearch.item_embedding(v_space, query_shape_id),
                                         k, query_shape_id, true) AS n
          JOIN pgsearch.shapes AS s ON s.id = n.item_id
          JOIN pgsearch.assets AS a ON a.id = s.asset_id
          JOIN pgsearch.labels AS l ON l.id = s.label_id
         ORDER BY n.distance DESC, s.id;
END $$;

-- Search a dataset's assets with a vector computed elsewhere (e.g. a CLIP text embedding).
CREATE FUNCTION pgsearch.search_assets(dataset text, query vector, k integer DEFAULT 10, model text DEFAULT NULL)
RETURNS TABLE (asset_id bigint, filename text, path text, distance double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
    v_dataset bigint;
    v_space   pgsearch.embedding_spaces;
BEGIN
    SELECT d.id INTO v_dataset FROM pgsearch.datasets AS d WHERE d.name = search_assets.dataset;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dataset "%" does not exist', search_assets.dataset
            USING ERRCODE = 'no_data_found',
                  HINT = 'datasets: ' || coalesce((SELECT string_agg(name, ', ' ORDER BY name)
                                                      FROM pgsearch.datasets), 'none');
    END IF;
    v_space := pgsearch.search_space(v_dataset, 'asset', model);
    RETURN QUERY
        SELECT a.id, a.filename, a.path, n.distance
          FROM pgsearch.nearest_in_space(v_space.id, query::halfvec, k) AS n
          JOIN pgsearch.assets AS a ON a.id = n.item_id
         ORDER BY n.distance, a.id;
END $$;

CREATE FUNCTION pgsearch.search_shapes(dataset text, query vector, k integer DEFAULT 10, model text DEFAULT NULL)
RETURNS TABLE (shape_id bigint, asset_id bigint, filename text, label text, distance double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
DECLARE
    v_dataset bigint;
    v_space   pgsearch.embedding_spaces;
BEGIN
    SELECT d.id INTO v_dataset FROM pgsearch.datasets AS d WHERE d.name = search_shapes.dataset;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dataset "%" does not exist', search_shapes.dataset
            USING ERRCODE = 'no_data_found',
                  HINT = 'datasets: ' || coalesce((SELECT string_agg(name, ', ' ORDER BY name)
                                                      FROM pgsearch.datasets), 'none');
    END IF;
    v_space := pgsearch.search_space(v_dataset, 'shape', model);
    RETURN QUERY
        SELECT s.id, s.asset_id, a.filename, l.name, n.distance
          FROM pgsearch.nearest_in_space(v_space.id, query::halfvec, k) AS n
          JOIN pgsearch.shapes AS s ON s.id = n.item_id
          JOIN pgsearch.assets AS a ON a.id = s.asset_id
          JOIN pgsearch.labels AS l ON l.id = s.label_id
         ORDER BY n.distance, s.id;
END $$;

COMMENT ON FUNCTION pgsearch.similar_assets(bigint, integer, text) IS
    'The k assets most similar to an asset (cosine distance of its embedding, HNSW index), itself '
    'excluded. model names the embedding model when the dataset has several. '
    'Example: SELECT * FROM pgsearch.similar_assets(42, 10);';
COMMENT ON FUNCTION pgsearch.dissimilar_assets(bigint, integer, text) IS
    'The k assets least similar to an asset (largest cosine distance), through the same HNSW index. '
    'Example: SELECT * FROM pgsearch.dissimilar_assets(42, 10);';
COMMENT ON FUNCTION pgsearch.similar_shapes(bigint, integer, text) IS
    'The k shapes most similar to a shape (cosine distance of the crop embeddings), itself excluded. '
    'Example: SELECT * FROM pgsearch.similar_shapes(7, 10);';
COMMENT ON FUNCTION pgsearch.dissimilar_shapes(bigint, integer, text) IS
    'The k shapes least similar to a shape (largest cosine distance). '
    'Example: SELECT * FROM pgsearch.dissimilar_shapes(7, 10);';
COMMENT ON FUNCTION pgsearch.search_assets(text, vector, integer, text) IS
    'The k assets of a dataset nearest to a vector of the model''s dimension (e.g. a text embedding). '
    'Example: SELECT * FROM pgsearch.search_assets(''street'', ''[0.1, ...]''::vector, 10);';
COMMENT ON FUNCTION pgsearch.search_shapes(text, vector, integer, text) IS
    'The k shapes of a dataset nearest to a vector of the model''s dimension.';

-- Search functions run as their owner, so a read-only role needs no grant on the tables and the
-- per-space partitions (created later, by name) behind them; then they must not trust the
-- caller's search_path: pin it to pgsearch and the schema the vector extension lives in.
-- Only roles granted EXECUTE (pgsearch db grant-reader) may call them.
DO $$
DECLARE
    v_vector_schema text;
    v_function      regprocedure;
BEGIN
    SELECT n.nspname INTO STRICT v_vector_schema
      FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace
     WHERE e.extname = 'vector';
    FOREACH v_function IN ARRAY ARRAY[
        'pgsearch.search_space(bigint, text, text)',
        'pgsearch.item_embedding(pgsearch.embedding_spaces, bigint)',
        'pgsearch.nearest_in_space(bigint, halfvec, integer, bigint, boolean)',
        'pgsearch.similar_assets(bigint, integer, text)',
        'pgsearch.dissimilar_assets(bigint, integer, text)',
        'pgsearch.similar_shapes(bigint, integer, text)',
        'pgsearch.dissimilar_shapes(bigint, integer, text)',
        'pgsearch.search_assets(text, vector, integer, text)',
        'pgsearch.search_shapes(text, vector, integer, text)']::regprocedure[]
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pgsearch, %I, pg_temp', v_function, v_vector_schema);
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', v_function);
    END LOOP;
END $$;
