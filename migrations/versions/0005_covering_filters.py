"""Covering filters: group members with their sketches, and the status index carrying id and
sketches, so the exact path of a filtered similarity search reads an index instead of asset rows

Revision ID: 0005
Revises: 0004
"""

from pgsearch.migrate import apply_sql_file

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql_file("covering.sql")


def downgrade() -> None:
    apply_sql_file("covering_down.sql")
