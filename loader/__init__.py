"""The loader: scans image folders, parses annotation formats, decodes images, computes
embeddings and bulk-writes everything into the pgsearch schema.

Entry points used by the CLI and the query layer:

- `pgsearch.loader.models.get_embedder(spec)` -> an `Embedder` (same object for a stored model name);
- `pgsearch.loader.pipeline.load_folder(...)` -> the `pgsearch load` work;
- `pgsearch.loader.embed.embed_pending(...)`, `status(...)`, `drop_model(...)`;
- `pgsearch.loader.spaces.dataset_spaces(conn, dataset_id)` -> the embedding spaces of a dataset;
- `pgsearch.loader.vectors.write(conn, space, embeddings)` -> the one place vectors and embedding
  states are written (`forget` drops them); `pgsearch.loader.rows` -> the typed asset / shape rows.

Nothing here imports torch at module level; models do when they are built.
"""
