"""Storing events exactly once and reading them back.

A unique message id is the source of truth for "exactly once": an insert
that meets an existing message id does nothing, and only the rows that were
really inserted are returned, so only those are ever pushed to a browser.
On SQLite the unique constraint is on ``events.message_id``. On Postgres
``events`` is partitioned by month, where a unique constraint would have to
include the month, so the ids live in ``event_message_ids``: one statement
inserts the batch's ids there first (ON CONFLICT DO NOTHING RETURNING) and
only the ids it returns into ``events``.
"""

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from app.events import clip
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
# Rows per INSERT: 12 columns each keeps a batch of Twitch's ``events``
# under the 65535 bound parameters Postgres (and SQLite's limit) allow.
INSERT_ROWS = 1000


def insert_for(session: so.Session, model: type) -> Any:
    """Return an INSERT for ``model`` that knows ON CONFLICT on this database."""
    dialect = session.get_bind().dialect.name
    return DIALECT_INSERTS[dialect](model)


# Held for the rest of a storing transaction on Postgres (see store_events).
FEED_ORDER_LOCK = 0x73_74_72_65_61_6D_66_64  # "streamfd"


def store_events(
    session: so.Session, rows: list[dict[str, Any]]
) -> list[Event] | list["StoredEvent"]:
    """Insert event rows, skipping message ids already stored, and count them.

    One INSERT stores the whole batch; the daily counts grow by the new rows
    only, in the same transaction, so a redelivery counts nothing. Returns
    the new events, oldest first (Events on SQLite, StoredEvents with the
    same fields on Postgres). The caller commits.

    Cursor order is commit order. The live feed and the API page by cursor
    (the event id), and a page that reconnects asks for everything "after"
    the last cursor it showed; if two writers could commit out of id order,
    the later-committing lower id would become visible after a page had
    already moved past it, and that page would never see it. On Postgres,
    every storing transaction therefore takes one transaction-level advisory
    lock before it draws ids and holds it until it commits or rolls back, so
    ids become visible in the order they were drawn, whichever web process
    or ingest consumer stores them. SQLite has one writer at a time anyway.
    Within a batch, ids follow the order of ``rows``.
    """
    if not rows:
        return []

    rows = unique_by_message_id(rows)
    stored_at = datetime.now(UTC)
    if session.get_bind().dialect.name == "postgresql":
        return store_postgres(session, rows, stored_at)

    new_events = []
    for part in chunks(rows):
        statement = (
            insert_for(session, Event)
            .values([dict(row, stored_at=stored_at) for row in part])
            .on_conflict_do_nothing(index_elements=["message_id"])
            .returning(Event)
        )
        new_events.extend(session.scalars(statement))
    new_events.sort(key=lambda e: e.id)
    count_events(session, new_events)
    return new_events


def chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Cut rows so one SQLite statement stays within its bound parameters."""
    return [rows[i : i + INSERT_ROWS] for i in range(0, len(rows), INSERT_ROWS)]


@dataclass(slots=True)
class StoredEvent:
    """A newly stored event as Postgres storing returns it: an Event's fields.

    Built from the rows handed in and the ids the database gave them, so
    nothing stored travels back; ``event_to_json`` reads it as an Event.
    """

    id: int
    message_id: str
    subscription_id: str | None
    event_type: str
    event_version: str
    streamer_id: str | None
    streamer_name: str | None
    user_id: str | None
    user_name: str | None
    occurred_at: datetime
    received_at: datetime
    amount: int | None
    payload: dict[str, Any]
    stored_at: datetime | None


# The columns a batch row carries, with their Postgres types.
EVENT_COLUMNS = {
    "message_id": "text",
    "subscription_id": "text",
    "event_type": "text",
    "event_version": "text",
    "streamer_id": "text",
    "streamer_name": "text",
    "user_id": "text",
    "user_name": "text",
    "occurred_at": "timestamptz",
    "received_at": "timestamptz",
    "amount": "bigint",
    "payload": "jsonb",
}
_names = ", ".join(EVENT_COLUMNS)
_types = ", ".join(f"{name} {kind}" for name, kind in EVENT_COLUMNS.items())
# One statement for a whole batch, which travels as one JSON array: note the
# new message ids, insert the events that were new (in the batch's order,
# so ids follow it), and add them to the daily counts. The day is the UTC
# day, as utc_day() and the reports cut it.
POSTGRES_STORE = f"""
WITH batch AS (
    SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb))
        AS b({_types}, position integer)
),
fresh AS (
    INSERT INTO event_message_ids (message_id, received_at)
    SELECT message_id, received_at FROM batch
    ON CONFLICT (message_id) DO NOTHING
    RETURNING message_id
),
inserted AS (
    INSERT INTO events ({_names}, stored_at)
    SELECT {_names}, clock_timestamp() FROM (
        SELECT batch.* FROM batch JOIN fresh USING (message_id) ORDER BY position
    ) AS new_rows
    RETURNING id, message_id, streamer_name, event_type, occurred_at, stored_at
),
counted AS (
    INSERT INTO event_counts (streamer_name, event_type, day, count)
    SELECT COALESCE(streamer_name, ''), event_type,
           to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*)
    FROM inserted
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (streamer_name, event_type, day)
    DO UPDATE SET count = event_counts.count + excluded.count
)
SELECT id, message_id, stored_at FROM inserted ORDER BY id
"""


def store_postgres(
    session: so.Session, rows: list[dict[str, Any]], stored_at: datetime
) -> list[StoredEvent]:
    """Store a batch on Postgres with one statement, under the order lock."""
    session.execute(
        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": FEED_ORDER_LOCK}
    )
    batch = dump_json([dict(row, position=index) for index, row in enumerate(rows)])
    by_id = {row["message_id"]: row for row in rows}
    result = session.execute(sa.text(POSTGRES_STORE), {"rows": batch})
    return [
        StoredEvent(id=new_id, stored_at=moment, **by_id[message_id])
        for new_id, message_id, moment in result
    ]


def dump_json(value: Any) -> str:
    """JSON text of rows, with orjson (datetimes as RFC 3339).

    Integers past 64 bits, which orjson refuses, go through the standard
    library instead.
    """
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=datetime.isoformat, separators=(",", ":"))


def unique_by_message_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the first row of each message id, in order."""
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(row["message_id"], row)
    return list(seen.values())


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
    for part in chunks(values):
        statement = insert_for(session, EventCount).values(part)
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
    status = clip(subscription.get("status") or "unknown", 60)
    values = {
        "id": str(subscription["id"]),
        "type": clip(subscription.get("type", ""), 100),
        "version": clip(subscription.get("version"), 20) or "",
        "condition": subscription.get("condition") or {},
        "status": status,
        "streamer_id": clip(streamer_id, 40),
        "cost": read_cost(subscription.get("cost")),
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


def read_cost(value: Any) -> int | None:
    """Twitch's cost is a small whole number; anything else is not kept."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
        return value
    return None


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
