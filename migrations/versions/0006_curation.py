"""Curation I: the neighbour graph per embedding space, projection run summaries, and the views
v_neighbors, v_projection_runs (x, y, cluster on v_assets and v_shapes)

Revision ID: 0006
Revises: 0005
"""

from pgsearch.migrate import apply_sql_file

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql_file("curation.sql")


def downgrade() -> None:
    apply_sql_file("curation_down.sql")
