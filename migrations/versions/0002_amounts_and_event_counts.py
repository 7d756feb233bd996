"""Event amounts (bits, gifted subs, raid viewers) and daily event counts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from app.events import find_amount

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The same day expression as the reports in sql/: the first ten characters of
# the stored time, which is UTC on both databases.
FILL_COUNTS = """
INSERT INTO event_counts (streamer_name, event_type, day, count)
SELECT COALESCE(streamer_name, ''), event_type,
       SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10), COUNT(*)
FROM events
GROUP BY COALESCE(streamer_name, ''), event_type,
         SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10)
"""


def upgrade() -> None:
    op.add_column("events", sa.Column("amount", sa.BigInteger()))
    op.create_table(
        "event_counts",
        sa.Column("streamer_name", sa.String(40), primary_key=True),
        sa.Column("event_type", sa.String(100), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
    )
    fill_amounts()
    op.execute(FILL_COUNTS)


def fill_amounts() -> None:
    """Give events stored before this revision their amount."""
    connection = op.get_bind()
    events = sa.table(
        "events",
        sa.column("id"),
        sa.column("event_type"),
        sa.column("amount"),
        sa.column("payload", sa.JSON()),
    )
    rows = connection.execute(
        sa.select(events.c.id, events.c.event_type, events.c.payload)
    )
    for row in rows.all():
        amount = find_amount(row.event_type, (row.payload or {}).get("event") or {})
        if amount is not None:
            connection.execute(
                events.update().where(events.c.id == row.id).values(amount=amount)
            )


def downgrade() -> None:
    op.drop_table("event_counts")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("amount")
