"""Search function fixes: exact least-similar searches, checked and normalised query vectors,
no overflow for a huge k, a clear message for an asset whose file could not be read

Revision ID: 0004
Revises: 0003
"""

from pgsearch.migrate import apply_sql_file

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql_file("search_fixes.sql")


def downgrade() -> None:
    apply_sql_file("search_fixes_down.sql")
