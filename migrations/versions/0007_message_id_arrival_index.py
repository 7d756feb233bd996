"""A BRIN index on when each message id arrived, for forgetting old ones.

``event_message_ids`` gains a row per stored event and needs its rows only
while a redelivery could still come (Twitch stops retrying within hours).
The daily storage job deletes rows older than MESSAGE_ID_RETENTION_DAYS;
this index finds them. Rows arrive in time order, so a BRIN index (a few
pages, summarizing ranges of the table) serves, at next to no cost per
insert, where a B-tree would add a second one to every stored event.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE INDEX ix_event_message_ids_received_at "
        "ON event_message_ids USING brin (received_at)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_event_message_ids_received_at")
