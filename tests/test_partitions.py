"""Postgres storage: monthly partitions, ids kept apart, cursor order.

These run on Postgres only; SQLite keeps one plain events table.
"""

import threading
import time
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so

from app.events import build_rows
from app.partitions import drop_old_partitions
from app.partitions import ensure_partitions
from app.partitions import forget_message_ids
from app.partitions import month_starts
from app.partitions import partition_name
from app.store import store_events
from conftest import load_sample
from conftest import make_test_app

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(postgres_url):
    app = make_test_app(postgres_url)
    engine = app.extensions["db"].engine
    yield engine
    with engine.begin() as connection:
        # Partitions made for far-off months here would outlive the test.
        for (name,) in connection.execute(
            sa.text(
                "SELECT relname FROM pg_class WHERE relname ~ '^events_y20(3|4)' "
                "AND relkind = 'r' "
                "AND relnamespace = to_regnamespace(current_schema())"
            )
        ):
            connection.execute(sa.text(f"DROP TABLE {name}"))
    engine.dispose()


def rows_at(message_id: str, moment: datetime) -> list[dict]:
    body = load_sample("channel.follow.v2")
    return build_rows(message_id, body, moment, moment)


def store(engine, rows) -> list:
    with so.Session(engine, expire_on_commit=False) as session:
        events = store_events(session, rows)
        session.commit()
    return events


def partition_of(engine, message_id: str) -> str:
    with engine.connect() as connection:
        return connection.scalar(
            sa.text(
                "SELECT tableoid::regclass::text FROM events WHERE message_id = :m"
            ),
            {"m": message_id},
        )


def test_rows_land_in_their_month_and_a_late_partition_takes_its_rows(engine):
    now = datetime.now(UTC)
    store(engine, rows_at("this-month", now))
    assert partition_of(engine, "this-month") == f"events_y{now:%Y}m{now:%m}"

    far = datetime(2031, 5, 10, tzinfo=UTC)
    store(engine, rows_at("far-off", far))
    assert partition_of(engine, "far-off") == "events_default"

    created = ensure_partitions(engine, months_ahead=1, now=far)
    assert created == ["events_y2031m05", "events_y2031m06"]
    assert partition_of(engine, "far-off") == "events_y2031m05"
    assert ensure_partitions(engine, months_ahead=1, now=far) == []


def test_a_redelivery_in_another_month_is_still_stored_once(engine):
    store(engine, rows_at("once", datetime.now(UTC)))
    assert store(engine, rows_at("once", datetime(2031, 5, 10, tzinfo=UTC))) == []
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM events")) == 1


def test_text_that_copy_escapes_is_stored_as_it_came(engine):
    """Rows go in through COPY's text format: tabs, newlines, backslashes and
    its null marker must come back unchanged."""
    odd = "a\tb\\c\nd\\N\re"
    rows = rows_at(odd, datetime.now(UTC))
    rows[0]["user_name"] = "\\N"
    rows[0]["payload"]["event"]["user_name"] = odd
    rows[0]["streamer_name"] = None
    (event,) = store(engine, rows)
    with engine.connect() as connection:
        stored = connection.execute(
            sa.text("SELECT message_id, user_name, streamer_name, payload FROM events")
        ).one()
    assert stored.message_id == odd == event.message_id
    assert stored.user_name == "\\N"
    assert stored.streamer_name is None
    assert stored.payload["event"]["user_name"] == odd


def message_ids(engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(
            connection.scalars(sa.text("SELECT message_id FROM event_message_ids"))
        )


def test_message_ids_past_the_retention_are_forgotten_in_chunks(engine):
    old = datetime.now(UTC) - timedelta(days=10)
    for index in range(7):
        store(engine, rows_at(f"old-{index}", old))
    store(engine, rows_at("recent", datetime.now(UTC) - timedelta(days=1)))

    cutoff = datetime.now(UTC) - timedelta(days=7)
    assert forget_message_ids(engine, cutoff, chunk=3) == 7
    assert message_ids(engine) == ["recent"]
    # The events stay; only the memory of their ids goes.
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM events")) == 8
    assert store(engine, rows_at("recent", datetime.now(UTC))) == []


def test_the_daily_storage_job_keeps_partitions_ids_and_months(postgres_url):
    from jobs.context import use_app
    from jobs.storage import keep_storage

    app = make_test_app(
        postgres_url, MESSAGE_ID_RETENTION_DAYS=2, EVENT_RETENTION_MONTHS=1
    )
    engine = app.extensions["db"].engine
    use_app(app)
    try:
        long_ago = datetime.now(UTC) - timedelta(days=100)
        ensure_partitions(engine, months_ahead=0, now=long_ago)
        store(engine, rows_at("long-ago", long_ago))
        store(engine, rows_at("three-days", datetime.now(UTC) - timedelta(days=3)))
        store(engine, rows_at("today", datetime.now(UTC)))
        with engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE " + partition_name(next_month())))
        summary = keep_storage()
        assert summary == (
            "1 partitions created, 2 message ids older than 2 days forgotten, "
            "1 old partitions dropped"
        )
        assert message_ids(engine) == ["today"]
        assert partition_of(engine, "long-ago") is None
        with engine.connect() as connection:
            assert connection.scalar(
                sa.text("SELECT to_regclass(:name)"),
                {"name": partition_name(next_month())},
            )
    finally:
        use_app(None)
        engine.dispose()


def test_months_past_the_event_retention_are_dropped_and_counts_stay(engine):
    now = datetime(2026, 12, 4, tzinfo=UTC)
    ensure_partitions(engine, months_ahead=3, now=datetime(2026, 1, 15, tzinfo=UTC))
    moments = {
        "no-partition": datetime(2025, 6, 1, tzinfo=UTC),  # in events_default
        "january": datetime(2026, 1, 20, tzinfo=UTC),
        "march": datetime(2026, 3, 31, 23, 59, tzinfo=UTC),
        "april": datetime(2026, 4, 1, tzinfo=UTC),
        "recent": now,
    }
    for message_id, moment in moments.items():
        store(engine, rows_at(message_id, moment))
    assert partition_of(engine, "no-partition") == "events_default"
    counts = rollup_total(engine)

    assert drop_old_partitions(engine, keep_months=0, now=now) == []
    # The current month and the 8 before it: April 2026 on.
    dropped = drop_old_partitions(engine, keep_months=8, now=now)

    assert dropped == ["events_y2026m01", "events_y2026m02", "events_y2026m03"]
    with engine.connect() as connection:
        left = connection.scalars(sa.text("SELECT message_id FROM events"))
        assert sorted(left) == ["april", "recent"]
    assert rollup_total(engine) == counts == 5
    assert drop_old_partitions(engine, keep_months=8, now=now) == []


def rollup_total(engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(sa.text("SELECT sum(count) FROM event_counts"))


def next_month() -> date:
    today = datetime.now(UTC).date()
    return month_starts(today, 2)[1]


def test_only_the_indexes_the_feed_and_reports_need(engine):
    with engine.connect() as connection:
        indexes = set(
            connection.scalars(
                sa.text(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'events' "
                    "AND schemaname = current_schema()"
                )
            )
        )
    assert indexes == {"events_pkey", "ix_events_streamer_name_id"}


def test_cursor_order_is_commit_order(engine):
    """A second writer waits for the first to commit, so its ids are higher."""
    first = so.Session(engine, expire_on_commit=False)
    first_events = store_events(first, rows_at("first", datetime.now(UTC)))
    second_events: list = []
    finished = threading.Event()

    def second_writer():
        with so.Session(engine, expire_on_commit=False) as session:
            second_events.extend(
                store_events(session, rows_at("second", datetime.now(UTC)))
            )
            session.commit()
        finished.set()

    thread = threading.Thread(target=second_writer)
    thread.start()
    time.sleep(0.5)
    assert not finished.is_set(), "the second writer did not wait"
    first.commit()
    first.close()
    thread.join(10)
    assert finished.is_set()
    assert second_events[0].id > first_events[0].id
