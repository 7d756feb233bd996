"""Events keep their payload as JSON text on Postgres, not JSONB.

Nothing queries inside a stored payload: reports read the columns, and the
feed and the API read the payload back whole. JSONB made Postgres build a
binary document for every event on the busiest write path (about a fifth
of the database's time per ingested event, see docs/SCALING.md); JSON only
checks the text and keeps it as sent. SQLite stores JSON as text already.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # On the partitioned table this rewrites every partition.
    op.execute("ALTER TABLE events ALTER COLUMN payload TYPE json USING payload::json")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE events ALTER COLUMN payload TYPE jsonb USING payload::jsonb"
    )
