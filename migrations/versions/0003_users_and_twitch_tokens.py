"""Users who signed in, their favorite streamer, and the Twitch tokens we hold.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from app.models import BigId

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def moment(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("provider_user_id", sa.String(64), nullable=False),
        sa.Column("login", sa.String(100), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("favorite_login", sa.String(40)),
        sa.Column("favorite_id", sa.String(40)),
        moment("created_at", nullable=False),
        moment("signed_in_at", nullable=False),
        sa.UniqueConstraint("provider", "provider_user_id", name="uq_users_identity"),
    )
    op.create_table(
        "twitch_tokens",
        sa.Column("id", BigId, primary_key=True),
        sa.Column(
            "user_id",
            BigId,
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("twitch_user_id", sa.String(40), nullable=False),
        sa.Column("channel_id", sa.String(40)),
        sa.Column("channel_login", sa.String(40)),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text()),
        moment("expires_at"),
        moment("validated_at"),
        moment("created_at", nullable=False),
        moment("ended_at"),
        sa.Column("ended_reason", sa.String(200)),
    )
    op.create_index("ix_twitch_tokens_channel_id", "twitch_tokens", ["channel_id"])


def downgrade() -> None:
    op.drop_index("ix_twitch_tokens_channel_id", "twitch_tokens")
    op.drop_table("twitch_tokens")
    op.drop_table("users")
