"""Events stored once per message id, and EventSub subscriptions.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("message_id", sa.String(100), nullable=False),
        sa.Column("subscription_id", sa.String(100)),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("event_version", sa.String(20), nullable=False),
        sa.Column("streamer_id", sa.String(40)),
        sa.Column("streamer_name", sa.String(40)),
        sa.Column("user_id", sa.String(40)),
        sa.Column("user_name", sa.String(255)),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", Document, nullable=False),
        sa.UniqueConstraint("message_id", name="uq_events_message_id"),
    )
    op.create_index("ix_events_streamer_name_id", "events", ["streamer_name", "id"])
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("version", sa.String(20), nullable=False),
        sa.Column("condition", Document, nullable=False),
        sa.Column("status", sa.String(60), nullable=False),
        sa.Column("streamer_id", sa.String(40)),
        sa.Column("cost", sa.Integer()),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    op.drop_table("subscriptions")
    op.drop_index("ix_events_streamer_name_id", table_name="events")
    op.drop_table("events")
