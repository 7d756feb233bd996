"""Tables, as typed SQLAlchemy models.

``events`` holds one row per stored EventSub event; the unique message id is
what makes storage exactly-once. ``event_counts`` rolls them up per
streamer, type and day for reports. ``subscriptions`` tracks the EventSub
subscriptions Twitch has told us about (by challenge, revocation, or the
answers to the jobs that create and list them). ``streamers`` are the
channels streamfeed keeps subscriptions for, with why a type is missing;
``reconcile_runs`` keep what each reconcile found, its cost included.
Migrations under ``migrations/`` create the same schema.
"""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.dialects import postgresql

# SQLite only autoincrements an INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class Base(so.DeclarativeBase):
    pass


class Event(Base):
    """One EventSub event, stored once per message id."""

    __tablename__ = "events"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    message_id: so.Mapped[str] = so.mapped_column(sa.String(100))
    subscription_id: so.Mapped[str | None] = so.mapped_column(sa.String(100))
    event_type: so.Mapped[str] = so.mapped_column(sa.String(100))
    event_version: so.Mapped[str] = so.mapped_column(sa.String(20))
    streamer_id: so.Mapped[str | None] = so.mapped_column(sa.String(40))
    streamer_name: so.Mapped[str | None] = so.mapped_column(sa.String(40))
    user_id: so.Mapped[str | None] = so.mapped_column(sa.String(40))
    user_name: so.Mapped[str | None] = so.mapped_column(sa.String(255))
    occurred_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime(timezone=True))
    received_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime(timezone=True))
    amount: so.Mapped[int | None] = so.mapped_column(sa.BigInteger)
    # JSON text on both databases (revision 0006): stored and read whole.
    payload: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON())
    # When it was stored: after received_at by the time it waited in the
    # ingest stream. Unset for events stored before revision 0005.
    stored_at: so.Mapped[datetime | None] = so.mapped_column(sa.DateTime(timezone=True))

    __table_args__ = (
        sa.UniqueConstraint("message_id", name="uq_events_message_id"),
        sa.Index("ix_events_streamer_name_id", "streamer_name", "id"),
    )


class EventCount(Base):
    """How many events of one type a streamer had on one UTC day.

    Updated in the transaction that stores the events it counts, and only
    for rows that were new. Events without a streamer count under "".
    """

    __tablename__ = "event_counts"

    streamer_name: so.Mapped[str] = so.mapped_column(sa.String(40), primary_key=True)
    event_type: so.Mapped[str] = so.mapped_column(sa.String(100), primary_key=True)
    day: so.Mapped[str] = so.mapped_column(sa.String(10), primary_key=True)
    count: so.Mapped[int] = so.mapped_column(sa.BigInteger)


class Subscription(Base):
    """An EventSub subscription as Twitch last described it to us."""

    __tablename__ = "subscriptions"

    id: so.Mapped[str] = so.mapped_column(sa.String(100), primary_key=True)
    type: so.Mapped[str] = so.mapped_column(sa.String(100))
    version: so.Mapped[str] = so.mapped_column(sa.String(20))
    condition: so.Mapped[dict[str, Any]] = so.mapped_column(Document)
    status: so.Mapped[str] = so.mapped_column(sa.String(60))
    streamer_id: so.Mapped[str | None] = so.mapped_column(sa.String(40))
    cost: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    created_at: so.Mapped[datetime | None] = so.mapped_column(
        sa.DateTime(timezone=True)
    )
    updated_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime(timezone=True))
    revoked_at: so.Mapped[datetime | None] = so.mapped_column(
        sa.DateTime(timezone=True)
    )
    # A short hash of the EventSub secret the subscription was created with
    # (never the secret), so a rotation knows which ones still use the old.
    secret_fingerprint: so.Mapped[str | None] = so.mapped_column(sa.String(16))

    __table_args__ = (sa.Index("ix_subscriptions_streamer_id", "streamer_id"),)


class Streamer(Base):
    """A channel streamfeed keeps EventSub subscriptions for.

    ``pinned`` is set by ``cli.py subscribe``; ``notes`` maps a type to why
    it is not subscribed (a scope Twitch refused, the cost limit);
    ``unwanted_since`` is when the reconcile first saw no one needing it.
    """

    __tablename__ = "streamers"

    id: so.Mapped[str] = so.mapped_column(sa.String(40), primary_key=True)
    login: so.Mapped[str] = so.mapped_column(sa.String(40))
    pinned: so.Mapped[bool] = so.mapped_column(sa.Boolean, default=False)
    notes: so.Mapped[dict[str, Any]] = so.mapped_column(Document, default=dict)
    unwanted_since: so.Mapped[datetime | None] = so.mapped_column(
        sa.DateTime(timezone=True)
    )
    backfilled_at: so.Mapped[datetime | None] = so.mapped_column(
        sa.DateTime(timezone=True)
    )
    updated_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime(timezone=True))

    __table_args__ = (sa.Index("ix_streamers_login", "login"),)


class ReconcileRun(Base):
    """What one reconcile found at Twitch and did about it."""

    __tablename__ = "reconcile_runs"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    finished_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime(timezone=True))
    total: so.Mapped[int] = so.mapped_column(sa.Integer)
    total_cost: so.Mapped[int] = so.mapped_column(sa.Integer)
    max_total_cost: so.Mapped[int] = so.mapped_column(sa.Integer)
    created: so.Mapped[int] = so.mapped_column(sa.Integer)
    deleted: so.Mapped[int] = so.mapped_column(sa.Integer)


class User(Base):
    """Someone who signed in, with Twitch or GitHub, and their favorite."""

    __tablename__ = "users"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    provider: so.Mapped[str] = so.mapped_column(sa.String(20))
    provider_user_id: so.Mapped[str] = so.mapped_column(sa.String(64))
    login: so.Mapped[str] = so.mapped_column(sa.String(100))
    display_name: so.Mapped[str] = so.mapped_column(sa.String(255))
    favorite_login: so.Mapped[str | None] = so.mapped_column(sa.String(40))
    favorite_id: so.Mapped[str | None] = so.mapped_column(sa.String(40))
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime(timezone=True))
    signed_in_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime(timezone=True))

    __table_args__ = (
        sa.UniqueConstraint("provider", "provider_user_id", name="uq_users_identity"),
    )


class TwitchToken(Base):
    """A Twitch user token we hold, encrypted: a sign-in's or a channel's.

    ``purpose`` is ``signin`` for the token of a viewer's session, and
    ``channel`` for the consent a streamer or moderator gave for a
    channel's scoped events. ``ended_at`` is set when Twitch stops
    accepting it; the sessions it belongs to end with it.
    """

    __tablename__ = "twitch_tokens"

    id: so.Mapped[int] = so.mapped_column(BigId, primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE")
    )
    purpose: so.Mapped[str] = so.mapped_column(sa.String(20))
    twitch_user_id: so.Mapped[str] = so.mapped_column(sa.String(40))
    channel_id: so.Mapped[str | None] = so.mapped_column(sa.String(40))
    channel_login: so.Mapped[str | None] = so.mapped_column(sa.String(40))
    scopes: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    access_token: so.Mapped[str] = so.mapped_column(sa.Text)
    refresh_token: so.Mapped[str | None] = so.mapped_column(sa.Text)
    expires_at: so.Mapped[datetime | None] = so.mapped_column(
        sa.DateTime(timezone=True)
    )
    validated_at: so.Mapped[datetime | None] = so.mapped_column(
        sa.DateTime(timezone=True)
    )
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime(timezone=True))
    ended_at: so.Mapped[datetime | None] = so.mapped_column(sa.DateTime(timezone=True))
    ended_reason: so.Mapped[str | None] = so.mapped_column(sa.String(200))

    __table_args__ = (sa.Index("ix_twitch_tokens_channel_id", "channel_id"),)
