"""Storing events exactly once and reading them back.

A unique message id is the source of truth for "exactly once": an insert
that meets an existing message id does nothing, and only the rows that were
really inserted are returned, so only those are ever pushed to a browser.
On SQLite the unique constraint is on ``events.message_id``. On Postgres
``events`` is partitioned by month, where a unique constraint would have to
include the month, so the ids live in ``event_message_ids``: a batch is
copied into a staging table, its ids are inserted there first (ON CONFLICT
DO NOTHING RETURNING), the rows whose ids came back stay staged, and only
those go into ``events``.
"""

import json
import logging
import re
from collections import Counter
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from typing import Any

import orjson
import psycopg
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
    session: so.Session,
    rows: list[dict[str, Any]],
    payload_texts: Mapping[str, str] | None = None,
) -> list[Event] | list["StoredEvent"]:
    """Insert event rows, skipping message ids already stored, and count them.

    ``payload_texts`` may give, by message id, JSON text equal to a row's
    payload (the notification body as received), which Postgres then takes
    as it is instead of the payload encoded again.

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
    if session.get_bind().dialect.name == "postgresql":
        return store_postgres(session, rows, payload_texts or {})

    stored_at = datetime.now(UTC)

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


class StoredEvent:
    """A newly stored event as Postgres storing returns it: an Event's fields.

    The row handed in, with the id and storing time the database gave it;
    nothing stored travels back. Its fields read as attributes, so
    ``event_to_json`` reads it as an Event. Built for every new row of every
    batch, so it only wraps the row; reading a field looks it up there.
    """

    __slots__ = ("id", "stored_at", "row")

    def __init__(self, id: int, stored_at: datetime, row: dict[str, Any]) -> None:
        self.id = id
        self.stored_at = stored_at
        self.row = row

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not slots; read the row without
        # coming back here while it is unset (as copy and pickle do).
        row = object.__getattribute__(self, "row")
        try:
            return row[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"StoredEvent(id={self.id}, message_id={self.row['message_id']!r})"


# The columns a batch row carries, with their Postgres types, in the order
# the staging table has them.
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
    "payload": "json",
}
_names = ", ".join(EVENT_COLUMNS)
_types = ", ".join(f"{name} {kind}" for name, kind in EVENT_COLUMNS.items())
# A batch is first copied into this temporary table of the session (COPY is
# the cheapest way in; the payload, JSON text, is only checked). It is
# created by the first batch of a session and emptied at every commit, so
# every transaction finds it empty; with a pooler that lends a server
# session per transaction, whichever session it gets creates its own.
STAGING_TABLE = "streamfeed_event_batch"
CREATE_STAGING = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING_TABLE} "
    f"(position integer, {_types}) ON COMMIT DELETE ROWS"
)
COPY_STAGING = f"COPY {STAGING_TABLE} (position, {_names}) FROM STDIN"
# Note the batch's message ids, in a fixed order so that two batches
# sharing ids cannot deadlock, and drop the rows whose id was already
# stored. A concurrent batch holding one of the ids makes this wait until
# it commits (then the row is dropped here) or rolls back (then it is
# stored here).
KEEP_FRESH = f"""
WITH fresh AS (
    INSERT INTO event_message_ids (message_id, received_at)
    SELECT message_id, received_at FROM {STAGING_TABLE} ORDER BY message_id
    ON CONFLICT (message_id) DO NOTHING
    RETURNING message_id
)
DELETE FROM {STAGING_TABLE}
WHERE message_id NOT IN (SELECT message_id FROM fresh)
"""
# Under the order lock: insert what is left in the batch's order, so ids
# follow it, and add it to the daily counts. The day is the UTC day, as
# utc_day() and the reports cut it.
INSERT_FRESH = f"""
WITH inserted AS (
    INSERT INTO events ({_names}, stored_at)
    SELECT {_names}, clock_timestamp() FROM {STAGING_TABLE} ORDER BY position
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
    session: so.Session, rows: list[dict[str, Any]], payload_texts: Mapping[str, str]
) -> list[StoredEvent]:
    """Store a batch on Postgres: stage it, keep the new ids, insert in order.

    Only the insert that draws ids, the counts and the commit run under the
    order lock; copying the batch in and sorting out known message ids do
    not, so batches of other consumers stage while one inserts.
    """
    driver = session.connection().connection.driver_connection
    # psycopg's own cursor, for COPY; its errors are raised as SQLAlchemy's,
    # as every other statement's are, so that callers tell a lost database
    # from a rejected row the same way.
    try:
        with driver.cursor() as cursor:
            cursor.execute(CREATE_STAGING)
            copy_rows(cursor, rows, payload_texts)
            cursor.execute(KEEP_FRESH)
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (FEED_ORDER_LOCK,))
            cursor.execute(INSERT_FRESH)
            inserted = cursor.fetchall()
    except psycopg.Error as e:
        raise sa.exc.DBAPIError.instance(
            "storing a batch", None, e, psycopg.Error
        ) from e
    by_id = {row["message_id"]: row for row in rows}
    return [
        StoredEvent(new_id, moment, by_id[message_id])
        for new_id, message_id, moment in inserted
    ]


def copy_rows(
    cursor: psycopg.Cursor,
    rows: list[dict[str, Any]],
    payload_texts: Mapping[str, str],
) -> None:
    """COPY the batch into the staging table, numbered in order."""
    with cursor.copy(COPY_STAGING) as copy:
        for position, row in enumerate(rows):
            copy.write_row(
                (
                    position,
                    row["message_id"],
                    row["subscription_id"],
                    row["event_type"],
                    row["event_version"],
                    row["streamer_id"],
                    row["streamer_name"],
                    row["user_id"],
                    row["user_name"],
                    row["occurred_at"],
                    row["received_at"],
                    row["amount"],
                    payload_texts.get(row["message_id"]) or dump_json(row["payload"]),
                )
            )


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


def words(value: Any) -> str | int | None:
    """Text or a number as Twitch sends them; anything else counts as absent."""
    plain = isinstance(value, str | int) and not isinstance(value, bool)
    return value if plain else None


def record_subscription(
    session: so.Session,
    subscription: dict[str, Any],
    streamer_id: str | None,
    secret_fingerprint: str | None = None,
) -> None:
    """Save what Twitch says of a subscription: its status, cost and condition.

    A revocation's status is its reason (``authorization_revoked`` and so
    on); the time it arrived is kept as ``revoked_at``. A verification
    challenge is signed with the subscription's own secret, so its
    ``secret_fingerprint`` is known then; otherwise the one stored stays.
    The caller commits.
    """
    now = datetime.now(UTC)
    status = clip(words(subscription.get("status")) or "unknown", 60)
    values = {
        "id": str(subscription["id"]),
        "type": clip(subscription.get("type", ""), 100),
        "version": clip(words(subscription.get("version")), 20) or "",
        "condition": subscription.get("condition") or {},
        "status": status,
        "streamer_id": clip(streamer_id, 40),
        "cost": read_cost(subscription.get("cost")),
        "created_at": parse_optional_timestamp(subscription.get("created_at")),
        "updated_at": now,
        "revoked_at": None if status == "enabled" else now,
        "secret_fingerprint": secret_fingerprint,
    }
    changes = {key: values[key] for key in ("status", "cost", "updated_at")}
    changes["revoked_at"] = values["revoked_at"]
    if secret_fingerprint is not None:
        changes["secret_fingerprint"] = secret_fingerprint
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


def event_to_json(event: Event | StoredEvent) -> dict[str, Any]:
    """Describe a stored event as the API and the live feed send it."""
    # A StoredEvent's fields are read from its row directly: ingest builds
    # this for every new event a page is watching.
    row = getattr(event, "row", None)
    get = row.__getitem__ if row is not None else event.__getattribute__
    payload = get("payload")
    body = payload.get("event") or {}
    user_id, user_name = get("user_id"), get("user_name")
    event_type = get("event_type")
    return {
        "cursor": str(event.id),
        "message_id": get("message_id"),
        "type": event_type,
        "version": get("event_version"),
        "streamer": {"id": get("streamer_id"), "login": get("streamer_name")},
        "actor": {"id": user_id, "name": user_name} if user_id or user_name else None,
        "occurred_at": format_timestamp(get("occurred_at")),
        "received_at": format_timestamp(get("received_at")),
        "summary": summarize(event_type, body),
        "event": body,
        # Stored by a job from Helix (jobs/backfill.py), not delivered live.
        "backfilled": bool(payload.get("backfilled")),
    }
