"""Curation II: curation runs and per-item results (uniqueness, mislabel scores, duplicate groups),
one partition per embedding space

Revision ID: 0007
Revises: 0006
"""

from pgsearch.migrate import apply_sql_file

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql_file("curation_scores.sql")


def downgrade() -> None:
    apply_sql_file("curation_scores_down.sql")
