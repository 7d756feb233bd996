"""Storing events exactly once and reading them back.

The unique constraint on ``events.message_id`` is the source of truth for
"exactly once": an insert that meets an existing message id does nothing,
and only the rows that were really inserted are returned, so only those are
ever pushed to a browser.
"""

import logging
import re
from collections import Counter
from datetime import UTC
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from app.events import format_timestamp
from app.events import parse_timestamp
from app.events import summarize
from app.models import Event
from app.models import EventCount
from app.models import Subscription

logger = logging.getLogger(__name__)

DIALECT_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
# A cursor is an event's id: a positive 64-bit integer on both databases.
CURSOR = re.compile(r"[0-9]{1,19}")
MAX_CURSOR = 2**63 - 1


def insert_for(session: so.Session, model: type) -> Any:
    """Return an INSERT for ``model`` that knows ON CONFLICT on this database."""
    dialect = session.get_bind().dialect.name
    return DIALECT_INSERTS[dialect](model)


def store_events(session: so.Session, rows: list[dict[str, Any]]) -> list[Event]:
    """Insert event rows, skipping message ids already stored, and count them.

    The daily counts grow by the new rows only, in the same transaction, so
    a redelivery counts nothing. Returns the new events, oldest first. The
    caller commits.
    """
    if not rows:
        return []

    statement = (
        insert_for(session, Event)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["message_id"])
        .returning(Event)
    )
    new_events = sorted(session.scalars(statement), key=lambda e: e.id)
    count_events(session, new_events)
    return new_events


def count_events(session: so.Session, events: list[Event]) -> None:
    """Add newly stored events to ``event_counts``."""
    if not events:
        return

    counts = Counter(
        (e.streamer_name or "", e.event_type, utc_day(e.occurred_at)) for e in events
    )
    # A fixed order of keys keeps two concurrent batches from deadlocking.
    values = [
        {"streamer_name": name, "event_type": kind, "day": day, "count": count}
        for (name, kind, day), count in sorted(counts.items())
    ]
    statement = insert_for(session, EventCount).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["streamer_name", "event_type", "day"],
        set_={"count": EventCount.count + statement.excluded["count"]},
    )
    session.execute(statement)


def utc_day(moment: datetime) -> str:
    """The UTC day of a stored time, as reports write it (YYYY-MM-DD)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date().isoformat()


def record_subscription(
    session: so.Session, subscription: dict[str, Any], streamer_id: str | None
) -> None:
    """Save what Twitch says of a subscription: its status, cost and condition.

    A revocation's status is its reason (``authorization_revoked`` and so
    on); the time it arrived is kept as ``revoked_at``. The caller commits.
    """
    now = datetime.now(UTC)
    status = str(subscription.get("status", "unknown"))
    values = {
        "id": str(subscription["id"]),
        "type": str(subscription.get("type", "")),
        "version": str(subscription.get("version", "")),
        "condition": subscription.get("condition") or {},
        "status": status,
        "streamer_id": streamer_id,
        "cost": subscription.get("cost"),
        "created_at": parse_optional_timestamp(subscription.get("created_at")),
        "updated_at": now,
        "revoked_at": None if status == "enabled" else now,
    }
    changes = {key: values[key] for key in ("status", "cost", "updated_at")}
    changes["revoked_at"] = values["revoked_at"]
    statement = (
        insert_for(session, Subscription)
        .values(values)
        .on_conflict_do_update(index_elements=["id"], set_=changes)
    )
    session.execute(statement)


def parse_optional_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def list_events(
    session: so.Session,
    streamer_name: str | None = None,
    limit: int = 50,
    before: int | None = None,
    after: int | None = None,
) -> list[Event]:
    """Return stored events, newest first, optionally for one streamer.

    ``before`` and ``after`` are cursors (the arrival order of events).
    """
    query = sa.select(Event).order_by(Event.id.desc()).limit(limit)
    if streamer_name is not None:
        query = query.where(Event.streamer_name == streamer_name)
    if before is not None:
        query = query.where(Event.id < before)
    if after is not None:
        query = query.where(Event.id > after)
    return list(session.scalars(query))


def list_events_after(
    session: so.Session, streamer_name: str, after: int, limit: int
) -> list[Event]:
    """Return up to ``limit`` events newer than cursor ``after``, oldest first."""
    query = (
        sa.select(Event)
        .where(Event.streamer_name == streamer_name, Event.id > after)
        .order_by(Event.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def parse_cursor(raw: str) -> int:
    """Read a cursor as given by the API, or raise ``ValueError`` saying why."""
    if not CURSOR.fullmatch(raw) or not 0 < int(raw) <= MAX_CURSOR:
        raise ValueError(
            f"must be a cursor from an event (1 to {MAX_CURSOR}); got {raw!r}"
        )
    return int(raw)


def event_to_json(event: Event) -> dict[str, Any]:
    """Describe a stored event as the API and the live feed send it."""
    body = event.payload.get("event") or {}
    actor = None
    if event.user_id or event.user_name:
        actor = {"id": event.user_id, "name": event.user_name}
    return {
        "cursor": str(event.id),
        "message_id": event.message_id,
        "type": event.event_type,
        "version": event.event_version,
        "streamer": {"id": event.streamer_id, "login": event.streamer_name},
        "actor": actor,
        "occurred_at": format_timestamp(event.occurred_at),
        "received_at": format_timestamp(event.received_at),
        "summary": summarize(event.event_type, body),
        "event": body,
        # Stored by a job from Helix (jobs/backfill.py), not delivered live.
        "backfilled": bool(event.payload.get("backfilled")),
    }
