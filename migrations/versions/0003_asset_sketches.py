"""Asset sketches: sign bits of each asset vector in the asset row, kept by triggers, for the
exact path of filtered similarity searches

Revision ID: 0003
Revises: 0002
"""

from pgsearch.migrate import apply_sql_file

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql_file("sketches.sql")


def downgrade() -> None:
    apply_sql_file("sketches_down.sql")
