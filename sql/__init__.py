"""The SQL objects pgsearch owns (functions, triggers, views): one file each, applied in OBJECT_FILES
order by `pgsearch db upgrade` after the alembic migrations (pgsearch/migrate.py). See README.md."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent

# Dependency order: functions first (a LANGUAGE sql body is checked against the tables when it is
# created; plpgsql bodies are not), then each trigger with its trigger function, then the views
# (a view may read another view or call a function).
OBJECT_FILES: tuple[str, ...] = (
    "functions/refresh_label_counts.sql",
    "functions/rename_label.sql",
    "functions/ensure_embedding_space.sql",
    "functions/build_embedding_index.sql",
    "functions/drop_embedding_space.sql",
    "functions/drop_dataset.sql",
    "functions/write_asset_sketches.sql",
    "functions/refresh_asset_sketches.sql",
    "functions/sync_group_members.sql",
    "functions/refresh_group_members.sql",
    "functions/search_space.sql",
    "functions/item_embedding.sql",
    "functions/query_direction.sql",
    "functions/nearest_in_space.sql",
    "functions/similar_assets.sql",
    "functions/dissimilar_assets.sql",
    "functions/similar_shapes.sql",
    "functions/dissimilar_shapes.sql",
    "functions/search_assets.sql",
    "functions/search_shapes.sql",
    "triggers/touch_updated_at.sql",
    "views/v_assets.sql",
    "views/v_shapes.sql",
    "views/v_label_counts.sql",
    "views/v_asset_groups.sql",
    "views/v_projections.sql",
    "views/v_projection_runs.sql",
    "views/v_neighbors.sql",
    "views/v_curation_runs.sql",
    "views/v_duplicate_groups.sql",
    "views/v_mislabels.sql",
)


def object_text(path: str) -> str:
    return (HERE / path).read_text(encoding="utf-8")


def function_names() -> set[str]:
    """Functions the files define: one per functions/ and triggers/ file, named after it."""
    return {Path(p).stem for p in OBJECT_FILES if p.startswith(("functions/", "triggers/"))}


def view_names() -> set[str]:
    return {Path(p).stem for p in OBJECT_FILES if p.startswith("views/")}


@lru_cache(maxsize=1)
def objects_hash() -> str:
    """sha256 of the files in order: recorded by the upgrade, compared at every command start."""
    digest = hashlib.sha256()
    for path in OBJECT_FILES:
        digest.update(path.encode() + b"\0" + (HERE / path).read_bytes() + b"\0")
    return digest.hexdigest()
