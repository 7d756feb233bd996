"""Storage upkeep on Postgres: monthly partitions, old message ids out.

``events`` is partitioned by month of ``received_at``. ``ensure_partitions``
creates the partitions of this month and the next ``months_ahead`` ones; it
runs when ``cli.py ingest`` starts, in the worker's daily storage job
(``jobs.storage``) and as ``cli.py partitions``. A row whose month has no
partition yet lands in ``events_default`` and is never refused; creating
that month's partition later moves such rows into it. With
EVENT_RETENTION_MONTHS set, ``drop_old_partitions`` drops whole months of
raw events past it in the same daily job.

``event_message_ids`` holds one row per stored event, only so that a
redelivery is recognized; ``forget_message_ids`` deletes the rows older than
a cut-off, a chunk per transaction. SQLite keeps one plain events table,
whose unique message ids are the events' own.
"""

import logging
import re
from datetime import UTC
from datetime import date
from datetime import datetime

import sqlalchemy as sa

logger = logging.getLogger(__name__)

# Serializes partition changes between processes that start together.
PARTITION_LOCK = 0x70_61_72_74_69_74_69_6F  # "partitio"


def month_starts(first: date, count: int) -> list[date]:
    """``count`` first days of months, from the month of ``first`` on."""
    months = []
    year, month = first.year, first.month
    for _ in range(count):
        months.append(date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


# What ``partition_name`` makes, read back by ``month_of``.
PARTITION_NAME = re.compile(r"events_y(?P<year>\d{4})m(?P<month>0[1-9]|1[0-2])")


def partition_name(month: date) -> str:
    return f"events_y{month.year:04d}m{month.month:02d}"


def ensure_partitions(
    engine: sa.Engine, months_ahead: int = 3, now: datetime | None = None
) -> list[str]:
    """Create missing monthly partitions; return the names created."""
    if engine.dialect.name != "postgresql":
        return []
    today = (now or datetime.now(UTC)).date()
    wanted = month_starts(today, months_ahead + 1)
    created = []
    with engine.begin() as connection:
        if not is_partitioned(connection):
            return []
        existing = set(partition_names(connection))
        missing = [m for m in wanted if partition_name(m) not in existing]
        if not missing:
            return []
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITION_LOCK}
        )
        for month in missing:
            if create_partition(connection, month):
                created.append(partition_name(month))
    return created


def drop_old_partitions(
    engine: sa.Engine, keep_months: int, now: datetime | None = None
) -> list[str]:
    """Drop the partitions of months before the last ``keep_months`` ones.

    The current month and the ``keep_months`` before it stay; older months'
    raw events go, a partition at a time (rows of such months that wait in
    ``events_default`` too). The rollups, and the reports read from them,
    keep their counts. ``keep_months`` of 0 keeps everything. Returns the
    names dropped, oldest first.
    """
    if engine.dialect.name != "postgresql" or keep_months <= 0:
        return []
    today = (now or datetime.now(UTC)).date()
    months = today.year * 12 + today.month - 1 - keep_months
    cutoff = date(months // 12, months % 12 + 1, 1)
    with engine.begin() as connection:
        if not is_partitioned(connection):
            return []
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITION_LOCK}
        )
        old = sorted(
            name
            for name in partition_names(connection)
            if (month := month_of(name)) is not None and month < cutoff
        )
        for name in old:
            connection.execute(sa.text(f"DROP TABLE {name}"))
            logger.info("Partition %s dropped (older than %s)", name, cutoff)
        connection.execute(
            sa.text(
                "DELETE FROM events_default "
                "WHERE received_at < CAST(:cutoff AS timestamptz)"
            ),
            {"cutoff": cutoff.isoformat()},
        )
    return old


def month_of(name: str) -> date | None:
    """The month of a partition named by ``partition_name``, else None."""
    match = PARTITION_NAME.fullmatch(name)
    if match is None:
        return None
    return date(int(match["year"]), int(match["month"]), 1)


def partition_names(connection) -> list[str]:
    """The partitions of ``events`` in the current schema."""
    return list(
        connection.scalars(
            sa.text(
                "SELECT c.relname FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent "
                "WHERE p.relname = 'events' "
                "AND p.relnamespace = to_regnamespace(current_schema())"
            )
        )
    )


# Rows deleted per transaction, so that no delete holds locks for long.
FORGET_CHUNK = 50_000


def forget_message_ids(
    engine: sa.Engine, older_than: datetime, chunk: int = FORGET_CHUNK
) -> int:
    """Delete message ids that arrived before ``older_than``; return how many.

    A redelivery of such a message would then be stored again, so the
    cut-off must lie past any retry: Twitch stops within hours.
    """
    if engine.dialect.name != "postgresql":
        return 0
    forgotten = 0
    while True:
        with engine.begin() as connection:
            deleted = connection.execute(
                sa.text(
                    "DELETE FROM event_message_ids WHERE ctid = ANY(ARRAY("
                    "SELECT ctid FROM event_message_ids "
                    "WHERE received_at < :cutoff LIMIT :chunk))"
                ),
                {"cutoff": older_than, "chunk": chunk},
            ).rowcount
        forgotten += deleted
        if deleted < chunk:
            return forgotten


def is_partitioned(connection) -> bool:
    return bool(
        connection.scalar(
            sa.text(
                "SELECT count(*) FROM pg_partitioned_table t "
                "JOIN pg_class c ON c.oid = t.partrelid "
                "WHERE c.relname = 'events' "
                "AND c.relnamespace = to_regnamespace(current_schema())"
            )
        )
    )


def create_partition(connection, month: date) -> bool:
    """Create one month's partition, moving its rows out of the default."""
    name = partition_name(month)
    if connection.scalar(sa.text("SELECT to_regclass(:name)"), {"name": name}):
        return False
    end = month_starts(month, 2)[1]
    bounds = {"start": month.isoformat(), "end": end.isoformat()}
    connection.execute(sa.text(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS)"))
    connection.execute(
        sa.text(
            f"WITH moved AS (DELETE FROM events_default WHERE received_at >= "
            f"CAST(:start AS timestamptz) AND received_at < "
            f"CAST(:end AS timestamptz) RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved"
        ),
        bounds,
    )
    connection.execute(
        sa.text(
            f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM "
            f"('{bounds['start']}') TO ('{bounds['end']}')"
        )
    )
    logger.info("Partition %s created", name)
    return True
