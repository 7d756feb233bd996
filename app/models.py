"""Tables, as typed SQLAlchemy models.

``events`` holds one row per stored EventSub event; the unique message id is
what makes storage exactly-once. ``event_counts`` rolls them up per
streamer, type and day for reports. ``subscriptions`` tracks the EventSub
subscriptions Twitch has told us about (by challenge or revocation).
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
    payload: so.Mapped[dict[str, Any]] = so.mapped_column(Document)

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
