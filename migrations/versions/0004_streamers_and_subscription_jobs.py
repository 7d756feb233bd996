"""Streamers we subscribe for, reconcile runs, and each subscription's secret.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from app.models import BigId
from app.models import Document

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def moment(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.add_column(
        "subscriptions", sa.Column("secret_fingerprint", sa.String(16), nullable=True)
    )
    op.create_index("ix_subscriptions_streamer_id", "subscriptions", ["streamer_id"])
    op.create_table(
        "streamers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("login", sa.String(40), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("notes", Document, nullable=False),
        moment("unwanted_since"),
        moment("backfilled_at"),
        moment("updated_at", nullable=False),
    )
    op.create_index("ix_streamers_login", "streamers", ["login"])
    op.create_table(
        "reconcile_runs",
        sa.Column("id", BigId, primary_key=True),
        moment("finished_at", nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("total_cost", sa.Integer(), nullable=False),
        sa.Column("max_total_cost", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reconcile_runs")
    op.drop_index("ix_streamers_login", "streamers")
    op.drop_table("streamers")
    op.drop_index("ix_subscriptions_streamer_id", "subscriptions")
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("secret_fingerprint")
