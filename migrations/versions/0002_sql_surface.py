"""SQL surface: flat commented views and search functions for psql and BI tools

Revision ID: 0002
Revises: 0001
"""

from pgsearch.migrate import apply_sql_file

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql_file("views.sql")


def downgrade() -> None:
    apply_sql_file("views_down.sql")
