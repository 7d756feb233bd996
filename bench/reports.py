"""Time the per-streamer and per-type reports, from rollups and from raw events.

Fills a PostgreSQL schema of its own with synthetic events (skewed across
streamers as real audiences are: a streamer's rank is drawn as
floor(N * u**4), so the top 1% of streamers get about a third of all events),
builds the daily rollups from them, then runs each report several times
both ways and prints the median.

    .venv/bin/python bench/reports.py [--events 10000000] [--streamers 5000]

The events are generated inside PostgreSQL (generate_series), since this
measures reading, not ingest. Run with --keep to reuse a filled schema.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa
import sqlalchemy.orm as so

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.db import create_engine  # noqa: E402
from app.db import upgrade_schema  # noqa: E402
from app.reports import load_reports  # noqa: E402
from app.reports import run_report  # noqa: E402

DEFAULT_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CHUNK = 1_000_000

# One chunk of synthetic events; :start and :stop bound the series.
FILL = """
INSERT INTO events (message_id, subscription_id, event_type, event_version,
                    streamer_id, streamer_name, user_id, user_name,
                    occurred_at, received_at, amount, payload)
SELECT 'bench-' || n, 'sub-' || rank, kind, '1',
       (1000000 + rank)::text, 'streamer_' || rank,
       (2000000 + viewer)::text, 'viewer_' || viewer,
       moment, moment, CASE WHEN kind = 'channel.cheer' THEN 100 END,
       jsonb_build_object('event', jsonb_build_object('user_name', 'viewer_' || viewer))
FROM (
  SELECT n,
         floor(:streamers * power(random(), 4))::int AS rank,
         floor(random() * 100000)::int AS viewer,
         (ARRAY['channel.follow', 'channel.follow', 'channel.follow',
                'channel.subscribe', 'channel.cheer', 'channel.raid',
                'channel.subscription.gift', 'stream.online',
                'channel.channel_points_custom_reward_redemption.add',
                'channel.poll.progress'])[1 + floor(random() * 10)::int] AS kind,
         TIMESTAMPTZ '2026-09-01 00:00:00+00' + random() * INTERVAL '90 days'
           AS moment
  FROM generate_series(:start, :stop - 1) AS n
) AS generated
"""

ROLLUP = """
INSERT INTO event_counts (streamer_name, event_type, day, count)
SELECT COALESCE(streamer_name, ''), event_type,
       SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10), COUNT(*)
FROM events
GROUP BY 1, 2, 3
"""


def main() -> None:
    """Fill (unless kept), then time the two reports both ways."""
    args = parse_args()
    url = f"{args.database_url}?options=-csearch_path%3D{args.schema}"
    if not args.keep:
        fill(args, url)

    engine = create_engine(url)
    with engine.connect() as connection:
        events = connection.scalar(sa.text("SELECT COUNT(*) FROM events"))
        rollups = connection.scalar(sa.text("SELECT COUNT(*) FROM event_counts"))
    print(f"events: {events:,}  rollup rows: {rollups:,}  streamers: {args.streamers}")

    reports = load_reports()
    for name in ("events-by-streamer", "events-by-type-and-streamer"):
        for exact in (False, True):
            seconds = time_report(engine, reports[name], exact, args)
            source = "raw events" if exact else "rollups"
            print(f"{name:<28} from {source:<10} median {seconds * 1000:9.1f} ms")
    engine.dispose()
    print("command: " + " ".join([sys.executable, *sys.argv]))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--streamers", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5, help="Runs per timing.")
    parser.add_argument("--schema", default="bench_reports")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--keep", action="store_true", help="Reuse a filled schema.")
    parser.add_argument(
        "--jit",
        action="store_true",
        help="Let PostgreSQL JIT-compile (the app does not).",
    )
    return parser.parse_args()


def fill(args: argparse.Namespace, url: str) -> None:
    """Create the schema afresh, migrate it, and fill events and rollups."""
    admin = sa.create_engine(args.database_url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {args.schema} CASCADE"))
        connection.execute(sa.text(f"CREATE SCHEMA {args.schema}"))
    admin.dispose()
    upgrade_schema(url)

    engine = create_engine(url)
    started = time.monotonic()
    for start in range(0, args.events, CHUNK):
        stop = min(start + CHUNK, args.events)
        with engine.begin() as connection:
            params = {"start": start, "stop": stop, "streamers": args.streamers}
            connection.execute(sa.text(FILL), params)
        print(f"filled {stop:,} events ({time.monotonic() - started:.0f} s)")
    with engine.begin() as connection:
        connection.execute(sa.text(ROLLUP))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    print(f"filled and rolled up in {time.monotonic() - started:.0f} s")
    engine.dispose()


def time_report(engine: sa.Engine, report, exact: bool, args) -> float:
    """Return the median wall time of ``args.runs`` runs of one report."""
    timings = []
    values = {"since": None, "until": None, "streamer": None}
    for _ in range(args.runs):
        with so.Session(engine) as session:
            if args.jit:
                session.execute(sa.text("SET jit = on"))
            started = time.perf_counter()
            run_report(session, report, values, exact=exact)
            timings.append(time.perf_counter() - started)
    return statistics.median(timings)


if __name__ == "__main__":
    main()
