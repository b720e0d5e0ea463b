"""${message}

Tables, columns, indexes and data moves only: views, functions and triggers live in sql/ and are
applied again after the migrations. A migration that changes a column one of them reads drops it
first (DROP VIEW IF EXISTS pgsearch.v_...); the upgrade makes it again from its file.

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from alembic import op

from pgsearch.migrate import run_sql

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}

UPGRADE = """
"""

DOWNGRADE = """
"""


def upgrade() -> None:
    run_sql(op.get_bind().connection.driver_connection, UPGRADE)


def downgrade() -> None:
    run_sql(op.get_bind().connection.driver_connection, DOWNGRADE)
