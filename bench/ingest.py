"""How fast `cli.py ingest` stores buffered notifications into Postgres.

Fills a Redis stream of its own with N signed-and-verified notifications
(as the webhook buffers them: realistic bodies of several event types for
many streamers, a fraction of them redeliveries of earlier message ids),
then starts C `cli.py ingest` processes and times them until the stream is
empty. Prints events stored per second (from the first stored row to the
last batch acknowledged) and checks exactly once: stored rows equal the
unique message ids, each stored once, and the daily rollups add up to
them (rollups are kept in the same transactions, so they are included).

Runs against a schema of its own in the local Postgres (dropped at the end
unless --keep) and the Redis database of --redis-url. Loopback only.

    .venv/bin/python bench/ingest.py --events 200000 --consumers 2
"""

import argparse
import json
import os
import random
import shlex
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC
from datetime import datetime
from pathlib import Path

import redis
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cpu import process_cpu  # noqa: E402
from cpu import redis_server_pid  # noqa: E402

from app.db import upgrade_schema  # noqa: E402
from app.events import format_timestamp  # noqa: E402
from app.feedbus import feed_channel  # noqa: E402
from app.ingest import dead_letter_stream  # noqa: E402

SAMPLES = ROOT / "app" / "simulator" / "samples"
TYPES = (
    "channel.follow.v2",
    "channel.cheer.v1",
    "channel.subscribe.v1",
    "channel.subscription.gift.v1",
    "channel.subscription.message.v1",
    "channel.raid.v1",
    "channel.channel_points_custom_reward_redemption.add.v1",
    "channel.chat.notification.v1",
)
SECRET = "bench-secret-0123456789"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--streamers", type=int, default=500)
    parser.add_argument(
        "--redeliveries", type=float, default=0.05, help="Fraction repeated."
    )
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    parser.add_argument(
        "--watched",
        type=int,
        default=0,
        help="Streamers with a page open: this script subscribes to their feed "
        "channels, as a web process does, so ingest builds and publishes their "
        "frames (ingest publishes only to channels someone listens to).",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the schema.")
    return parser.parse_args()


def bodies(streamers: int) -> list[tuple[str, dict]]:
    """Sample bodies, one per type, to vary per message."""
    loaded = []
    for name in TYPES:
        body = json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))
        loaded.append((name, body))
    return loaded


def make_body(sample: dict, index: int, streamers: int) -> bytes:
    body = json.loads(json.dumps(sample))
    streamer = index % streamers
    condition = body["subscription"]["condition"]
    for key in ("broadcaster_user_id", "to_broadcaster_user_id"):
        if key in condition:
            condition[key] = str(100_000 + streamer)
    event = body["event"]
    for key in ("broadcaster_user_id", "to_broadcaster_user_id"):
        if key in event:
            event[key] = str(100_000 + streamer)
    for key in ("broadcaster_user_login", "to_broadcaster_user_login"):
        if key in event:
            event[key] = f"streamer_{streamer}"
    if "user_id" in event:
        event["user_id"] = str(5_000_000 + index)
    return json.dumps(body, separators=(",", ":")).encode()


def fill(client: redis.Redis, stream: str, args) -> int:
    """Buffer the notifications; return how many unique message ids."""
    samples = bodies(args.streamers)
    now = datetime.now(UTC)
    timestamp = format_timestamp(now)
    received = now.isoformat()
    sent: list[str] = []
    pipe = client.pipeline(transaction=False)
    for index in range(args.events):
        if sent and random.random() < args.redeliveries:
            message_id = random.choice(sent)
        else:
            message_id = str(uuid.uuid4())
            sent.append(message_id)
        _, sample = samples[index % len(samples)]
        pipe.xadd(
            stream,
            {
                "message_id": message_id,
                "timestamp": timestamp,
                "received_at": received,
                "body": make_body(sample, index, args.streamers),
            },
        )
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()
    return len(set(sent))


APPLICATION = "bench-ingest"


def cpu_seconds(engine, processes) -> dict[str, float]:
    """CPU used so far by the consumers, their Postgres server processes and
    Redis (a server shared with anything else running, so an upper bound).
    Postgres processes that have not started yet count from zero."""
    with engine.connect() as connection:
        backends = connection.scalars(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE application_name = :a "
                "AND pid <> pg_backend_pid()"
            ),
            {"a": APPLICATION},
        ).all()
    return {
        "consumers": sum(process_cpu(p.pid) for p in processes),
        "postgres": sum(process_cpu(pid) for pid in backends),
        "redis": process_cpu(redis_server_pid()),
    }


class Watcher:
    """Subscribers to some streamers' feed channels, counting what arrives."""

    def __init__(self, client: redis.Redis, streamers: int) -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.events = 0
        self.frames = 0
        self.stopped = threading.Event()
        if streamers:
            self.pubsub.subscribe(
                *(feed_channel(f"streamer_{n}") for n in range(streamers))
            )
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self) -> None:
        while not self.stopped.is_set():
            if not self.pubsub.subscribed:
                time.sleep(0.1)
                continue
            message = self.pubsub.get_message(timeout=0.2)
            if message and message["type"] == "message":
                # Counted, not parsed: the pages' work is not ingest's.
                self.frames += 1
                self.events += message["data"].count(b'"cursor":')

    def stop(self) -> None:
        time.sleep(0.5)
        self.stopped.set()
        self.thread.join(5)
        self.pubsub.close()


def main() -> None:
    args = parse_args()
    random.seed(7)
    schema = f"bench_ingest_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.database_url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    # The application name marks the consumers' server processes, whose CPU
    # time this script reads from /proc at the end.
    url = (
        f"{args.database_url}?options=-csearch_path%3D{schema}"
        f"&application_name={APPLICATION}"
    )
    stream = f"bench-{uuid.uuid4().hex[:8]}:ingest"
    client = redis.Redis.from_url(args.redis_url)
    processes = []
    try:
        upgrade_schema(url)
        print(f"Filling {stream} with {args.events} notifications ...", flush=True)
        unique = fill(client, stream, args)
        print(f"{args.events} buffered, {unique} unique message ids", flush=True)
        memory = client.memory_usage(stream, samples=0)
        print(
            f"Redis holds the buffer in {memory / 2**20:,.1f} MiB: "
            f"{memory / args.events:,.0f} bytes per buffered notification",
            flush=True,
        )

        env = dict(
            os.environ,
            DATABASE_URL=url,
            REDIS_URL=args.redis_url,
            INGEST_STREAM=stream,
            INGEST_BATCH_SIZE=str(args.batch_size),
            EVENTSUB_SECRET=SECRET,
            SECRET_KEY="bench-secret-key-of-32-characters-or-more",
            TWITCH_CLIENT_ID="bench",
            TWITCH_CLIENT_SECRET="bench",
            SIMULATOR="0",
            LOG_LEVEL="WARNING",
        )
        engine = sa.create_engine(url)
        # Every run starts just after a checkpoint, so that one run does not
        # pay for the previous run's writes (needs a superuser; skipped if not).
        try:
            with admin.begin() as connection:
                connection.execute(sa.text("CHECKPOINT"))
        except sa.exc.DBAPIError as e:
            print(f"no CHECKPOINT before the run ({type(e.orig).__name__})")
        watcher = Watcher(client, min(args.watched, args.streamers))
        started = time.monotonic()
        for number in range(args.consumers):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "cli.py", "ingest", "--name", f"bench-{number}"],
                    cwd=ROOT,
                    env=env,
                )
            )
        first_row = None
        cpu_before, stored_before = cpu_seconds(engine, processes), 0
        while client.xlen(stream):
            if first_row is None:
                with engine.connect() as connection:
                    stored_before = connection.scalar(
                        sa.text("SELECT count(*) FROM events")
                    )
                if stored_before:
                    first_row = time.monotonic()
                    cpu_before = cpu_seconds(engine, processes)
            time.sleep(0.01)
        finished = time.monotonic()
        cpu_after = cpu_seconds(engine, processes)
        first_row = first_row or started

        with engine.connect() as connection:
            total, distinct = connection.execute(
                sa.text("SELECT count(*), count(DISTINCT message_id) FROM events")
            ).one()
            rolled = connection.scalar(sa.text("SELECT sum(count) FROM event_counts"))
            differences = connection.scalar(
                sa.text(
                    "SELECT count(*) FROM (SELECT streamer_name, event_type, "
                    "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, "
                    "count(*) AS n FROM events GROUP BY 1, 2, 3) AS raw "
                    "FULL JOIN event_counts c ON c.streamer_name = "
                    "COALESCE(raw.streamer_name, '') AND c.event_type = "
                    "raw.event_type AND c.day = raw.day "
                    "WHERE raw.n IS DISTINCT FROM c.count"
                )
            )
        engine.dispose()
        watcher.stop()
        dead = client.xlen(dead_letter_stream(stream))
        exact = total == distinct == unique == rolled and not differences and not dead
        seconds = finished - first_row
        print(
            f"stored {total} events ({unique} unique of {args.events} buffered) "
            f"with {args.consumers} consumers, batches of {args.batch_size}"
        )
        print(
            f"{total / seconds:,.0f} events/s ({seconds:.2f} s from the first "
            f"stored row; {finished - started:.2f} s including start-up); "
            f"dead letters {dead}; rollups {'match' if not differences else 'DIFFER'}"
        )
        timed = max(total - stored_before, 1)
        used = {k: (cpu_after[k] - cpu_before[k]) / timed * 1e6 for k in cpu_after}
        print(
            f"CPU per stored event: {used['consumers']:.1f} us in the consumers, "
            f"{used['postgres']:.1f} us in their Postgres server processes, "
            f"{used['redis']:.1f} us in Redis"
        )
        print(
            f"{min(args.watched, args.streamers)} of {args.streamers} streamers "
            f"watched: {watcher.events} events published to them in "
            f"{watcher.frames} frames"
        )
        print("command: " + shlex.join([sys.executable, *sys.argv]))
        print(
            f"ingest {total / seconds:,.0f} events/s, exactly once: "
            f"{'yes' if exact else 'no'}"
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        client.delete(stream, dead_letter_stream(stream))
        if not args.keep:
            with admin.begin() as connection:
                connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    main()
