CREATE OR REPLACE VIEW pgsearch.v_neighbors WITH (security_invoker = true) AS
SELECT d.name          AS dataset,
       m.name          AS model,
       sp.target,
       n.item_id,
       coalesce(a.filename, sa.filename) AS filename,
       nb.neighbor_id,
       coalesce(na.filename, nsa.filename) AS neighbor_filename,
       nb.rank::integer AS rank,
       nb.distance,
       l.name          AS label,
       nl.name         AS neighbor_label,
       n.space_id,
       sp.dataset_id
  FROM pgsearch.neighbors AS n
  JOIN pgsearch.embedding_spaces AS sp ON sp.id = n.space_id
  JOIN pgsearch.embedding_models AS m ON m.id = sp.model_id
  JOIN pgsearch.datasets AS d ON d.id = sp.dataset_id
  CROSS JOIN LATERAL unnest(n.neighbor_ids, n.distances) WITH ORDINALITY AS nb(neighbor_id, distance, rank)
  LEFT JOIN pgsearch.assets AS a ON sp.target = 'asset' AND a.id = n.item_id
  LEFT JOIN pgsearch.assets AS na ON sp.target = 'asset' AND na.id = nb.neighbor_id
  LEFT JOIN pgsearch.shapes AS s ON sp.target = 'shape' AND s.id = n.item_id
  LEFT JOIN pgsearch.assets AS sa ON sa.id = s.asset_id
  LEFT JOIN pgsearch.labels AS l ON l.id = s.label_id
  LEFT JOIN pgsearch.shapes AS ns ON sp.target = 'shape' AND ns.id = nb.neighbor_id
  LEFT JOIN pgsearch.assets AS nsa ON nsa.id = ns.asset_id
  LEFT JOIN pgsearch.labels AS nl ON nl.id = ns.label_id;

COMMENT ON VIEW pgsearch.v_neighbors IS
    'The neighbour graph (pgsearch neighbors): one row per (item, neighbour), rank 1 the nearest. '
    'Filter on dataset (and model, target); item_id is an asset id or a shape id per target.';
COMMENT ON COLUMN pgsearch.v_neighbors.dataset IS 'Name of the dataset.';
COMMENT ON COLUMN pgsearch.v_neighbors.model IS 'Embedding model of the space.';
COMMENT ON COLUMN pgsearch.v_neighbors.target IS 'asset or shape.';
COMMENT ON COLUMN pgsearch.v_neighbors.item_id IS 'Asset id (target asset) or shape id (target shape).';
COMMENT ON COLUMN pgsearch.v_neighbors.filename IS 'File name of the item (of the shape''s asset).';
COMMENT ON COLUMN pgsearch.v_neighbors.neighbor_id IS 'Id of the neighbour (same kind as item_id).';
COMMENT ON COLUMN pgsearch.v_neighbors.neighbor_filename IS 'File name of the neighbour.';
COMMENT ON COLUMN pgsearch.v_neighbors.rank IS 'Rank of the neighbour, 1 = nearest.';
COMMENT ON COLUMN pgsearch.v_neighbors.distance IS 'Cosine distance between item and neighbour (0 = same direction).';
COMMENT ON COLUMN pgsearch.v_neighbors.label IS 'Label of the shape; NULL for assets.';
COMMENT ON COLUMN pgsearch.v_neighbors.neighbor_label IS 'Label of the neighbouring shape; NULL for assets.';
COMMENT ON COLUMN pgsearch.v_neighbors.space_id IS 'Embedding space id.';
COMMENT ON COLUMN pgsearch.v_neighbors.dataset_id IS 'Dataset id.';
