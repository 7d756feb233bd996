"""Events get stored_at; on Postgres, partitioned by month, ids kept apart.

``stored_at`` says when an event was stored, which with the ingest stream
comes after ``received_at``; events stored before are given their arrival.

``events`` becomes a declaratively partitioned table (RANGE on
``received_at``, one partition per month plus ``events_default``, which
catches a month whose partition was not created ahead). A unique constraint
on a partitioned table must include the partition key, and a redelivery
arrives at another time, so the exactly-once guarantee moves to a small
unpartitioned table, ``event_message_ids``, which a storing transaction
fills first (ON CONFLICT DO NOTHING) and whose new ids alone are inserted
into ``events`` (see ``app.store``). ``received_at`` there allows pruning
ids older than any redelivery could be.

Indexes are those the feed and the reports read by: the primary key
``(id, received_at)`` (the feed's and the API's cursor) and
``(streamer_name, id)`` (one streamer's feed and reports), created on the
parent so every partition gets them. The rows and the id sequence are
kept. SQLite keeps its plain table: this revision changes nothing there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = (
    "id, message_id, subscription_id, event_type, event_version, streamer_id, "
    "streamer_name, user_id, user_name, occurred_at, received_at, payload, amount"
)
COPIED = COLUMNS + ", stored_at"
COLUMN_TYPES = """
    message_id VARCHAR(100) NOT NULL,
    subscription_id VARCHAR(100),
    event_type VARCHAR(100) NOT NULL,
    event_version VARCHAR(20) NOT NULL,
    streamer_id VARCHAR(40),
    streamer_name VARCHAR(40),
    user_id VARCHAR(40),
    user_name VARCHAR(255),
    occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    payload JSONB NOT NULL,
    amount BIGINT,
    stored_at TIMESTAMP WITH TIME ZONE
"""
MONTHS_AHEAD = 3


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("events") as batch:
            batch.add_column(sa.Column("stored_at", sa.DateTime(timezone=True)))
        op.execute("UPDATE events SET stored_at = received_at")
        return
    op.execute("ALTER TABLE events RENAME TO events_unpartitioned")
    op.execute(
        "ALTER TABLE events_unpartitioned "
        "RENAME CONSTRAINT events_pkey TO events_unpartitioned_pkey"
    )
    op.execute(
        "ALTER TABLE events_unpartitioned "
        "RENAME CONSTRAINT uq_events_message_id TO uq_events_unpartitioned_message_id"
    )
    op.execute(
        "ALTER INDEX ix_events_streamer_name_id "
        "RENAME TO ix_events_unpartitioned_streamer_name_id"
    )
    op.execute(
        f"""CREATE TABLE events (
            id BIGINT NOT NULL DEFAULT nextval('events_id_seq'),
            {COLUMN_TYPES},
            CONSTRAINT events_pkey PRIMARY KEY (id, received_at)
        ) PARTITION BY RANGE (received_at)"""
    )
    op.execute("CREATE INDEX ix_events_streamer_name_id ON events (streamer_name, id)")
    for start, end, name in months_to_create():
        op.execute(
            f"CREATE TABLE {name} PARTITION OF events "
            f"FOR VALUES FROM ('{start}') TO ('{end}')"
        )
    op.execute("CREATE TABLE events_default PARTITION OF events DEFAULT")
    op.execute(
        f"INSERT INTO events ({COPIED}) "
        f"SELECT {COLUMNS}, received_at FROM events_unpartitioned"
    )
    op.execute(
        "CREATE TABLE event_message_ids ("
        "message_id VARCHAR(100) NOT NULL PRIMARY KEY, "
        "received_at TIMESTAMP WITH TIME ZONE NOT NULL)"
    )
    op.execute(
        "INSERT INTO event_message_ids (message_id, received_at) "
        "SELECT message_id, received_at FROM events_unpartitioned"
    )
    op.execute("ALTER SEQUENCE events_id_seq OWNED BY events.id")
    op.execute("DROP TABLE events_unpartitioned")


def months_to_create() -> list[tuple[str, str, str]]:
    """Each month from the oldest stored row (or now) to MONTHS_AHEAD ahead."""
    rows = op.get_bind().exec_driver_sql(
        "SELECT to_char(m, 'YYYY-MM-DD'), "
        "to_char(m + interval '1 month', 'YYYY-MM-DD'), "
        'to_char(m, \'"events_y"YYYY"m"MM\') '
        "FROM generate_series("
        "  date_trunc('month', LEAST("
        "    (SELECT min(received_at) FROM events_unpartitioned), now())),"
        f"  date_trunc('month', now()) + interval '{MONTHS_AHEAD} months',"
        "  interval '1 month') AS m"
    )
    return [tuple(row) for row in rows]


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("events") as batch:
            batch.drop_column("stored_at")
        return
    op.execute("ALTER TABLE events RENAME TO events_partitioned")
    op.execute(
        "ALTER TABLE events_partitioned "
        "RENAME CONSTRAINT events_pkey TO events_partitioned_pkey"
    )
    op.execute(
        "ALTER INDEX ix_events_streamer_name_id "
        "RENAME TO ix_events_partitioned_streamer_name_id"
    )
    op.execute(
        f"""CREATE TABLE events (
            id BIGINT NOT NULL DEFAULT nextval('events_id_seq'),
            {COLUMN_TYPES},
            CONSTRAINT events_pkey PRIMARY KEY (id),
            CONSTRAINT uq_events_message_id UNIQUE (message_id)
        )"""
    )
    op.execute("CREATE INDEX ix_events_streamer_name_id ON events (streamer_name, id)")
    op.execute(
        f"INSERT INTO events ({COLUMNS}) SELECT {COLUMNS} FROM events_partitioned "
        "ORDER BY id"
    )
    op.execute("ALTER TABLE events DROP COLUMN stored_at")
    op.execute("ALTER SEQUENCE events_id_seq OWNED BY events.id")
    op.execute("DROP TABLE events_partitioned")
    op.execute("DROP TABLE event_message_ids")
