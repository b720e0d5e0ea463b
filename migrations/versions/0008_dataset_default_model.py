"""The dataset's default embedding model: the one searches, the SQL search functions and the
status use when the dataset has several models and none is named. NULL: no default (a dataset
with one model uses it; with several, a request must name one).

A reference to the model, not to a space: dropping the model's embeddings (`pgsearch embed
--drop`) keeps it, so the dataset still knows which model to embed with again.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

from pgsearch.migrate import run_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        op.get_bind().connection.driver_connection,
        """
        ALTER TABLE pgsearch.datasets ADD COLUMN IF NOT EXISTS default_model_id bigint
            REFERENCES pgsearch.embedding_models (id) ON DELETE SET NULL;
        COMMENT ON COLUMN pgsearch.datasets.default_model_id IS
            'The embedding model used when the dataset has several and a search names none '
            '(pgsearch embed --default-model); NULL: none set.';
        """,
    )


def downgrade() -> None:
    # pgsearch.migrate.downgrade has dropped the objects (search_space() reads the column).
    run_sql(
        op.get_bind().connection.driver_connection,
        "ALTER TABLE pgsearch.datasets DROP COLUMN IF EXISTS default_model_id;",
    )
