"""schema v1: datasets, assets, labels, shapes, embeddings, embedding state, projections

Revision ID: 0001
Revises:
"""

from pgsearch.migrate import apply_sql_file

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql_file("schema_v1.sql")


def downgrade() -> None:
    apply_sql_file("schema_v1_down.sql")
