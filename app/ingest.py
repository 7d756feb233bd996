"""Buffered ingest: a Redis stream between the webhook and the database.

With ``REDIS_URL`` set, the webhook appends each verified notification to
the stream ``INGEST_STREAM`` (``buffer_notification``) and answers 204 at
once; Postgres is never touched in the request. ``cli.py ingest`` runs a
``Consumer``: any number of them share the consumer group ``ingest``, so
each entry goes to one of them. A consumer

1. reads a batch: up to ``INGEST_BATCH_SIZE`` entries, waiting at most
   ``INGEST_BATCH_WAIT_MS`` for it to fill once the first entry came;
2. stores it with one INSERT that skips message ids already stored, and
   counts the new rows in the daily rollups, in one transaction
   (``app.store.store_events``, which also makes cursor order equal commit
   order);
3. after the commit, publishes the new rows of each streamer that some
   page is watching on ``app.feedbus.feed_channel(login)``, notes the
   outcome per message id
   for ``cli.py explain``, and only then acknowledges and deletes the
   entries (one MULTI, so an entry is never acknowledged without the
   rest).

Nothing is lost by a crash: an entry read but not acknowledged stays in the
group's pending list, and after ``INGEST_CLAIM_IDLE_MS`` without progress
another consumer claims it (XAUTOCLAIM); storing it again stores nothing
twice, because the database skips known message ids. While the database is
down a consumer keeps its batch pending, keeps it claimed, and retries with
a growing pause; the webhook goes on buffering meanwhile.

An entry that cannot be stored (its body cannot be read, or the database
rejects it ``INGEST_MAX_TRIES`` times, or consumers died while holding it
more than that many times) moves to the dead-letter stream
``INGEST_STREAM + ":dead"`` with the reason; ``cli.py dead-letters`` lists
and replays them.

The stream has no MAXLEN: trimming could drop notifications not yet
stored. It stays small because entries are deleted once acknowledged, so
its length is the backlog; Redis memory bounds how long an outage of the
database can be absorbed (see docs/SCALING.md).
"""

import gc
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any

import redis
import sqlalchemy as sa
import sqlalchemy.orm as so

from app import deliveries
from app import metrics
from app.events import build_rows
from app.events import parse_timestamp
from app.feedbus import feed_frames
from app.feedbus import watched_channels
from app.store import store_events

logger = logging.getLogger(__name__)

GROUP = "ingest"
DEAD_SUFFIX = ":dead"
# Longest pause between tries while the database is unreachable.
MAX_BACKOFF_SECONDS = 5.0
# How long one XREADGROUP blocks while the stream is empty.
IDLE_BLOCK_MS = 1000
# A consumer holding nothing and idle this long is removed from the group.
FORGET_AFTER_MS = 3_600_000


# Python's cyclic garbage collector runs after every 700 new container
# objects by default. A batch holds tens of thousands (parsed bodies, rows)
# alive until it is stored, so each of those runs walks them in vain, and
# the older generations grow with them: about a quarter of a consumer's CPU
# went there (docs/SCALING.md). Nearly all of it is freed by reference
# counting when the batch is done, so the collector can run far less often.
GC_THRESHOLDS = (100_000, 50, 100)


def tune_garbage_collection() -> None:
    """Collect cycles rarely; leave what start-up built out of every walk."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def dead_letter_stream(stream: str) -> str:
    return stream + DEAD_SUFFIX


def entry_fields(
    message_id: str, timestamp: str, raw: bytes, now: datetime
) -> dict[str, str | bytes]:
    """The fields of the stream entry that buffers one notification.

    ``timestamp`` is Twitch's message timestamp as sent, ``raw`` the body.
    """
    return {
        "message_id": message_id,
        "timestamp": timestamp,
        "received_at": now.isoformat(),
        "body": raw,
    }


def buffer_notification(
    client: redis.Redis,
    stream: str,
    message_id: str,
    timestamp: str,
    raw: bytes,
    now: datetime,
) -> None:
    """Append a verified notification to the stream: one XADD.

    A single command is atomic, so a notification is buffered whole or not
    at all. The web processes append through ``webhooks.appender``, which
    sends the XADDs of concurrent requests together; this is the same
    entry, one at a time. Raises ``redis.RedisError`` when Redis cannot
    take it.
    """
    client.xadd(stream, entry_fields(message_id, timestamp, raw, now))


def ensure_group(client: redis.Redis, stream: str) -> None:
    """Create the stream and its consumer group when they do not exist."""
    try:
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


class BadEntry(Exception):
    """A stream entry that can never be stored; the message says why."""


class Entry:
    """One stream entry: its id and its fields, as bytes."""

    __slots__ = ("raw_id", "id", "fields", "payload_text", "_message_id")

    def __init__(self, raw_id: bytes | str, fields: dict[bytes, bytes]) -> None:
        self.raw_id = raw_id
        self.id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
        self.fields = fields
        self.payload_text: str | None = None
        self._message_id: str | None = None

    @property
    def message_id(self) -> str:
        if self._message_id is None:
            raw = self.fields.get(b"message_id", b"")
            self._message_id = raw.decode("utf-8", "replace")
        return self._message_id

    def rows(self) -> list[dict[str, Any]]:
        """The ``events`` rows of this notification, or raise ``BadEntry``.

        When the body is one event and stands as its payload unchanged,
        ``payload_text`` is set to the body's text, which the database can
        take as the payload's JSON as it is.
        """
        from webhooks.messages import Refused
        from webhooks.messages import check_notification
        from webhooks.messages import parse_body

        try:
            message_id = self.fields[b"message_id"].decode()
            sent_at = parse_timestamp(self.fields[b"timestamp"].decode())
            received_at = datetime.fromisoformat(self.fields[b"received_at"].decode())
            raw = self.fields[b"body"]
            body, as_sent = parse_body(raw)
            check_notification(body)
        except KeyError as e:
            raise BadEntry(f"entry has no {e.args[0].decode()} field") from e
        except (UnicodeDecodeError, ValueError) as e:
            raise BadEntry(f"entry field is unreadable: {e}") from e
        except Refused as e:
            raise BadEntry(e.reason) from e
        rows = build_rows(message_id, body, sent_at, received_at)
        # The payload is {"subscription": ..., "event": ...}: the body itself.
        if as_sent and len(body) == 2 and "event" in body:
            self.payload_text = raw.decode()
        return rows


def payload_texts_of(entry: Entry, rows: list[dict[str, Any]]) -> dict[str, str]:
    """``{message id: payload text}`` for an entry whose rows came from it."""
    if entry.payload_text is None:
        return {}
    return {rows[0]["message_id"]: entry.payload_text}


def entries_of(raw: list) -> list[Entry]:
    """Turn XREADGROUP/XAUTOCLAIM output into entries (deleted ones dropped)."""
    return [Entry(entry_id, fields) for entry_id, fields in raw if fields is not None]


def entry_age_seconds(entry_id: str, now: float) -> float:
    """How long ago an entry was added: stream ids start with Unix ms."""
    return max(0.0, now - int(entry_id.split("-")[0]) / 1000)


# Postgres errors (SQLSTATE) that say the database cannot take writes now,
# whatever the rows: wait them out rather than count a try. A read-only
# transaction (a standby during failover) and a table or column missing
# (the schema not yet migrated) would otherwise dead-letter every entry.
NOT_WRITABLE_STATES = frozenset({"25006", "42P01", "42703"})


def is_database_down(error: Exception) -> bool:
    """Tell a lost, refused or read-only database (retry) from a rejected row."""
    if isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError):
        return True
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    state = getattr(error.orig, "sqlstate", None)
    return error.connection_invalidated or state in NOT_WRITABLE_STATES


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class Settings:
    stream: str
    batch_size: int
    batch_wait_ms: int
    claim_idle_ms: int
    max_tries: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Settings":
        return cls(
            stream=config["INGEST_STREAM"],
            batch_size=config["INGEST_BATCH_SIZE"],
            batch_wait_ms=config["INGEST_BATCH_WAIT_MS"],
            claim_idle_ms=config["INGEST_CLAIM_IDLE_MS"],
            max_tries=config["INGEST_MAX_TRIES"],
        )


class Consumer:
    """One member of the ingest consumer group; ``run`` until ``stop`` is set."""

    def __init__(
        self,
        client: redis.Redis,
        sessions: Callable[[], so.Session],
        settings: Settings,
        name: str | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.redis = client
        self.sessions = sessions
        self.settings = settings
        self.name = name or consumer_name()
        self.stop = stop or threading.Event()
        self.dead_stream = dead_letter_stream(settings.stream)
        self.claim_cursor = "0-0"
        self.next_claim = 0.0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                ensure_group(self.redis, self.settings.stream)
                break
            except redis.ConnectionError as e:
                logger.error(
                    "Ingest consumer %s: Redis unavailable (%s); retrying",
                    self.name,
                    type(e).__name__,
                )
                self.stop.wait(1.0)
        logger.info(
            "Ingest consumer %s: reading %s (batches of up to %s, %s ms wait)",
            self.name,
            self.settings.stream,
            self.settings.batch_size,
            self.settings.batch_wait_ms,
        )
        # Entries this name read before a restart come first.
        first = True
        while not self.stop.is_set():
            try:
                batch = self.own_pending() if first else self.next_batch()
                first = False
                if batch:
                    self.handle(batch)
            except redis.RedisError as e:
                logger.error(
                    "Ingest consumer %s: Redis unavailable (%s: %s); retrying",
                    self.name,
                    type(e).__name__,
                    e,
                )
                self.stop.wait(1.0)
        logger.info("Ingest consumer %s: stopped", self.name)

    def own_pending(self) -> list[Entry]:
        stream = self.settings.stream
        response = self.redis.xreadgroup(
            GROUP, self.name, {stream: "0"}, count=self.settings.batch_size
        )
        return entries_of(response[0][1]) if response else []

    def next_batch(self) -> list[Entry]:
        """Claimed entries of dead consumers if any, else new entries."""
        if time.monotonic() >= self.next_claim:
            claimed = self.claim_abandoned()
            if claimed:
                return claimed
        return self.read_new()

    def claim_abandoned(self) -> list[Entry]:
        """Take over entries another consumer left unacknowledged too long."""
        settings = self.settings
        cursor, raw, deleted = self.redis.xautoclaim(
            settings.stream,
            GROUP,
            self.name,
            min_idle_time=settings.claim_idle_ms,
            start_id=self.claim_cursor,
            count=settings.batch_size,
        )[:3]
        self.claim_cursor = cursor.decode() if isinstance(cursor, bytes) else cursor
        if self.claim_cursor == "0-0":
            # A full pass found nothing more: look again in a while.
            self.next_claim = time.monotonic() + settings.claim_idle_ms / 4000
            self.forget_idle_consumers()
        if deleted:
            self.redis.xack(settings.stream, GROUP, *deleted)
        entries = entries_of(raw)
        if entries:
            logger.warning(
                "Ingest consumer %s: claimed %s entries left pending by a "
                "stopped consumer",
                self.name,
                len(entries),
            )
        return self.drop_poisonous(entries)

    def forget_idle_consumers(self) -> None:
        """Remove consumers that hold nothing and have been gone an hour.

        Each process joins under its own name, so without this the group
        would list every consumer that ever ran.
        """
        for consumer in self.redis.xinfo_consumers(self.settings.stream, GROUP):
            name = consumer["name"]
            name = name.decode() if isinstance(name, bytes) else name
            if (
                name != self.name
                and not consumer["pending"]
                and consumer["idle"] > FORGET_AFTER_MS
            ):
                self.redis.xgroup_delconsumer(self.settings.stream, GROUP, name)
                logger.info(
                    "Ingest consumer %s: forgot idle consumer %s", self.name, name
                )

    def drop_poisonous(self, entries: list[Entry]) -> list[Entry]:
        """Dead-letter entries whose consumers died too often holding them."""
        if not entries:
            return entries
        pending = self.redis.xpending_range(
            self.settings.stream,
            GROUP,
            min=entries[0].id,
            max=entries[-1].id,
            count=len(entries) * 2,
            consumername=self.name,
        )
        deliveries_by_id = {
            (p["message_id"].decode()): p["times_delivered"] for p in pending
        }
        keep = []
        for entry in entries:
            times = deliveries_by_id.get(entry.id, 1)
            if times > self.settings.max_tries:
                self.dead_letter(
                    entry,
                    f"read {times - 1} times by consumers that stopped before "
                    "storing it",
                )
            else:
                keep.append(entry)
        return keep

    def read_new(self) -> list[Entry]:
        """Read up to a batch, waiting briefly for it to fill.

        The first read blocks until something comes. If that is less than
        a batch, the rest gets ``batch_wait_ms`` to arrive and is taken in
        one more read: reading again as each entry arrives would cost a
        round trip (and Redis a wake-up) per entry or two at moderate rates.
        """
        settings = self.settings
        streams = {settings.stream: ">"}
        response = self.redis.xreadgroup(
            GROUP, self.name, streams, count=settings.batch_size, block=IDLE_BLOCK_MS
        )
        entries = entries_of(response[0][1]) if response else []
        if not entries or len(entries) >= settings.batch_size:
            return entries
        if self.stop.wait(settings.batch_wait_ms / 1000):
            return entries
        response = self.redis.xreadgroup(
            GROUP, self.name, streams, count=settings.batch_size - len(entries)
        )
        if response:
            entries.extend(entries_of(response[0][1]))
        return entries

    def handle(self, batch: list[Entry]) -> None:
        """Store a batch, publish what was new, then acknowledge it."""
        started = time.time()
        rows: list[dict[str, Any]] = []
        texts: dict[str, str] = {}
        seen: set[str] = set()
        readable = []
        for entry in batch:
            try:
                entry_rows = entry.rows()
            except BadEntry as e:
                self.dead_letter(entry, str(e))
                continue
            rows.extend(entry_rows)
            # Storing keeps the first row of a message id; only the entry
            # that row came from may give its payload text.
            first_id = entry_rows[0]["message_id"]
            if entry.payload_text is not None and first_id not in seen:
                texts[first_id] = entry.payload_text
            seen.update(row["message_id"] for row in entry_rows)
            readable.append(entry)
        if not readable:
            return

        result = self.store_batch(readable, rows, texts)
        if result is not None:
            self.finish(*result, started)

    def store_batch(
        self, entries: list[Entry], rows: list, texts: dict[str, str]
    ) -> tuple[list[Entry], list] | None:
        """Store the rows of ``entries``; None if stopped before it could.

        Returns the entries dealt with and the new events. Waits out a
        database outage. When the database rejects the batch, stores its
        entries one by one so that only the bad ones fail (and go to the
        dead-letter stream).
        """
        pause = 0.2
        while not self.stop.is_set():
            try:
                return entries, self.store_rows(rows, texts)
            except Exception as e:
                # Anything else a row can cause (the database refusing it,
                # text the driver cannot encode) is found entry by entry.
                if not is_database_down(e):
                    break
                logger.warning(
                    "Ingest consumer %s: database unavailable (%s); %s entries "
                    "stay pending, retrying in %.1f s",
                    self.name,
                    type(getattr(e, "orig", e)).__name__,
                    len(entries),
                    pause,
                )
                metrics.INGEST_RETRIES.inc()
                self.keep_claimed(entries)
                self.stop.wait(pause)
                pause = min(pause * 2, MAX_BACKOFF_SECONDS)
        else:
            return None

        logger.warning(
            "Ingest consumer %s: the database rejected a batch of %s; storing "
            "its entries one by one",
            self.name,
            len(entries),
        )
        kept, stored = [], []
        for entry in entries:
            events = self.store_alone(entry)
            if events is not None:
                kept.append(entry)
                stored.extend(events)
        return kept, stored

    def store_alone(self, entry: Entry) -> list | None:
        """Store one entry, trying a few times; dead-letter it if it fails.

        Returns its new events, or None when it was dead-lettered or the
        consumer stopped first (then it stays pending). An outage of the
        database does not count as a try.
        """
        attempt, pause = 0, 0.2
        while not self.stop.is_set():
            try:
                rows = entry.rows()
                return self.store_rows(rows, payload_texts_of(entry, rows))
            except Exception as e:
                if is_database_down(e):
                    self.keep_claimed([entry])
                    self.stop.wait(pause)
                    pause = min(pause * 2, MAX_BACKOFF_SECONDS)
                    continue
                attempt += 1
                error = type(getattr(e, "orig", e)).__name__
                logger.warning(
                    "Ingest consumer %s: entry %s (message %s) not stored, try "
                    "%s of %s: %s",
                    self.name,
                    entry.id,
                    entry.message_id,
                    attempt,
                    self.settings.max_tries,
                    error,
                )
                if attempt >= self.settings.max_tries:
                    reason = f"not stored after {attempt} tries: {error}: {e}"
                    self.dead_letter(entry, reason[:500])
                    return None
                self.stop.wait(0.1 * attempt)
        return None

    def store_rows(self, rows: list[dict[str, Any]], texts: dict[str, str]) -> list:
        session = self.sessions()
        try:
            new_events = store_events(session, rows, texts)
            session.commit()
            return new_events
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()

    def keep_claimed(self, entries: list[Entry]) -> None:
        """Reset the idle time of entries still being worked on."""
        try:
            self.redis.xclaim(
                self.settings.stream,
                GROUP,
                self.name,
                min_idle_time=0,
                message_ids=[e.id for e in entries],
                justid=True,
            )
        except redis.RedisError:
            pass

    def finish(self, entries: list[Entry], new_events: list, started: float) -> None:
        """Publish, note outcomes, then acknowledge and delete: one MULTI."""
        if not entries:
            return
        stored = set()
        for event in new_events:
            # A batch's items are stored as "<message id>:<position>"; an
            # id may hold ":" itself, so both forms count as the message.
            stored.add(event.message_id)
            parent, _, position = event.message_id.rpartition(":")
            if parent and position.isdigit():
                stored.add(parent)
        dupes, counted = [], set()
        for entry in entries:
            message_id = entry.message_id
            if message_id in stored and message_id not in counted:
                counted.add(message_id)
            else:
                dupes.append(entry)
        # Entry ids as Redis sent them: bytes go out again without encoding.
        ids = [e.raw_id for e in entries]
        stream = self.settings.stream

        watched = watched_channels(self.redis, new_events)
        pipe = self.redis.pipeline(transaction=True)
        if watched:
            for channel, frame in feed_frames(new_events, watched).items():
                pipe.publish(channel, frame)
        deliveries.add_duplicates(
            pipe, [(e.message_id, e.fields.get(b"received_at", b"")) for e in dupes]
        )
        pipe.xack(stream, GROUP, *ids)
        pipe.xdel(stream, *ids)
        pipe.execute()

        metrics.INGEST_BATCH_SIZE.observe(len(entries))
        metrics.INGEST_STORED.inc(len(new_events))
        metrics.INGEST_DUPLICATES.inc(len(dupes))
        # Entries come oldest first, new or claimed alike.
        metrics.INGEST_LAG.set(entry_age_seconds(entries[0].id, started))
        logger.debug(
            "Ingest consumer %s: %s entries, %s new events, %s duplicates",
            self.name,
            len(entries),
            len(new_events),
            len(dupes),
        )

    def dead_letter(self, entry: Entry, reason: str) -> None:
        """Move an entry to the dead-letter stream with the reason."""
        logger.error(
            "Ingest consumer %s: entry %s (message %s) dead-lettered: %s",
            self.name,
            entry.id,
            entry.message_id,
            reason,
        )
        fields = dict(entry.fields)
        fields[b"reason"] = reason.encode()
        fields[b"entry_id"] = entry.id.encode()
        fields[b"failed_at"] = datetime.now(UTC).isoformat().encode()
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.dead_stream, fields)
        pipe.xack(self.settings.stream, GROUP, entry.id)
        pipe.xdel(self.settings.stream, entry.id)
        pipe.execute()
        metrics.INGEST_DEAD_LETTERS.inc()


def replay_dead_letters(
    client: redis.Redis, stream: str, dead_ids: list[str]
) -> list[str]:
    """Put dead letters back on the stream; return their new entry ids."""
    dead = dead_letter_stream(stream)
    new_ids = []
    for dead_id in dead_ids:
        found = client.xrange(dead, min=dead_id, max=dead_id)
        if not found:
            continue
        fields = {
            k: v
            for k, v in found[0][1].items()
            if k not in (b"reason", b"entry_id", b"failed_at")
        }
        pipe = client.pipeline(transaction=True)
        pipe.xadd(stream, fields)
        pipe.xdel(dead, dead_id)
        new_id, _ = pipe.execute()
        new_ids.append(new_id.decode())
    return new_ids
