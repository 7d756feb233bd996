"""Alembic migrations: from nothing, and over data stored by older revisions."""

import uuid
from datetime import UTC
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic import command

from app.db import alembic_config
from app.db import create_engine
from app.db import upgrade_schema
from conftest import POSTGRES_URL
from conftest import load_sample


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/migrate.db"
        return

    schema = f"migrate_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def insert_old_event(engine, message_id: str, sample: str) -> None:
    """Store an event the way revision 0001 did: no amount, no rollup."""
    body = load_sample(sample)
    moment = datetime(2026, 3, 14, 18, 0, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO events (message_id, event_type, event_version, "
                "streamer_name, occurred_at, received_at, payload) VALUES "
                "(:id, :type, '1', 'example_streamer', :at, :at, :payload)"
            ).bindparams(
                sa.bindparam("at", type_=sa.DateTime(timezone=True)),
                sa.bindparam("payload", type_=sa.JSON()),
            ),
            {
                "id": message_id,
                "type": body["subscription"]["type"],
                "at": moment,
                "payload": {
                    "subscription": body["subscription"],
                    "event": body["event"],
                },
            },
        )


def test_upgrading_fills_amounts_and_daily_counts_for_old_events(empty_url):
    upgrade_schema(empty_url, "0001")
    engine = create_engine(empty_url)
    insert_old_event(engine, "old-cheer", "channel.cheer.v1")
    insert_old_event(engine, "old-follow", "channel.follow.v2")
    upgrade_schema(empty_url)
    with engine.connect() as connection:
        amounts = connection.execute(
            sa.text("SELECT message_id, amount FROM events ORDER BY message_id")
        ).all()
        counts = connection.execute(
            sa.text("SELECT event_type, day, count FROM event_counts ORDER BY 1")
        ).all()
    engine.dispose()
    assert [tuple(row) for row in amounts] == [("old-cheer", 100), ("old-follow", None)]
    assert [tuple(row) for row in counts] == [
        ("channel.cheer", "2026-03-14", 1),
        ("channel.follow", "2026-03-14", 1),
    ]


def test_downgrading_to_nothing_and_back_works(empty_url):
    upgrade_schema(empty_url)
    command.downgrade(alembic_config(empty_url), "base")
    upgrade_schema(empty_url)
    engine = create_engine(empty_url)
    assert {"events", "event_counts", "subscriptions"} <= set(
        sa.inspect(engine).get_table_names()
    )
    engine.dispose()
