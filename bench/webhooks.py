"""Webhook throughput and latency in production mode, against HMAC-only.

Starts, on loopback, the real app under gunicorn (gunicorn.conf.py, with
Postgres and Redis: notifications are buffered in a Redis stream) and
`cli.py ingest` consumers, then sends signed notifications from several
load processes at a chosen concurrency for a chosen time, a fraction of
them redeliveries of message ids already accepted. Prints accepted per
second and p50/p99/max latency, waits for ingest to drain the stream, and
checks that the stored rows equal the unique messages accepted (and the
rollups add up to them). The same load goes, in alternating rounds so that
whatever else runs on the machine weighs on both alike, to
bench/hmac_only.py, a Flask endpoint that only checks the HMAC and answers
204, under the same gunicorn settings; ours is printed as a ratio of it.
The last line reads

    ratio R (ours X/s, HMAC-only Y/s), p99 P ms, exactly once: yes|no

Uses a Postgres schema of its own (dropped at the end) and a Redis stream
of its own in the database of --redis-url. Loopback only, bounded by
--seconds.

    .venv/bin/python bench/webhooks.py --concurrency 64 --seconds 20
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing
import os
import random
import shlex
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC
from datetime import datetime
from pathlib import Path

import redis
import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cpu import process_cpu  # noqa: E402
from cpu import redis_server_pid  # noqa: E402
from cpu import tree_cpu  # noqa: E402

from app.db import upgrade_schema  # noqa: E402
from app.ingest import dead_letter_stream  # noqa: E402

SECRET = "bench-secret-0123456789"
SAMPLES = ROOT / "app" / "simulator" / "samples"
TYPES = (
    "channel.follow.v2",
    "channel.cheer.v1",
    "channel.subscribe.v1",
    "channel.subscription.gift.v1",
    "channel.raid.v1",
    "channel.channel_points_custom_reward_redemption.add.v1",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="Load time per server."
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="The load time is cut in this many rounds, alternating between "
        "the servers, so that other work on the machine weighs on both alike.",
    )
    parser.add_argument("--redeliveries", type=float, default=0.05)
    parser.add_argument(
        "--load-processes", type=int, default=2, help="Processes sending."
    )
    parser.add_argument("--consumers", type=int, default=1, help="Ingest processes.")
    parser.add_argument(
        "--ingest",
        choices=["during", "after"],
        default="during",
        help="Run the ingest consumers during the load (as in production) or "
        "only after it (the web processes alone on these cores).",
    )
    parser.add_argument(
        "--web-concurrency",
        default=os.environ.get("WEB_CONCURRENCY", "2"),
        help="gunicorn workers, for both servers.",
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="Start both servers with gunicorn's --reuse-port (SO_REUSEPORT), "
        "so the kernel spreads connections over the workers.",
    )
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    return parser.parse_args()


# -- the load ----------------------------------------------------------------


def sample_bodies() -> list[bytes]:
    bodies = []
    for name in TYPES:
        body = json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))
        bodies.append(json.dumps(body, separators=(",", ":")).encode())
    return bodies


def request_bytes(port: int, body: bytes, message_id: str) -> bytes:
    timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    signed = message_id.encode() + timestamp.encode() + body
    signature = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    head = (
        f"POST /webhooks/eventsub HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Twitch-Eventsub-Message-Id: {message_id}\r\n"
        f"Twitch-Eventsub-Message-Retry: 0\r\n"
        f"Twitch-Eventsub-Message-Type: notification\r\n"
        f"Twitch-Eventsub-Message-Signature: sha256={signature}\r\n"
        f"Twitch-Eventsub-Message-Timestamp: {timestamp}\r\n"
        f"Twitch-Eventsub-Subscription-Type: channel.follow\r\n"
        f"Twitch-Eventsub-Subscription-Version: 2\r\n"
        f"\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def connection(port, deadline, redeliveries, bodies, results) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    accepted: list[str] = results["accepted_ids"]
    while time.monotonic() < deadline:
        if accepted and random.random() < redeliveries:
            message_id = random.choice(accepted)
            fresh = False
        else:
            message_id = str(uuid.uuid4())
            fresh = True
        payload = request_bytes(port, random.choice(bodies), message_id)
        started = time.perf_counter()
        try:
            writer.write(payload)
            status = await read_response(reader)
        except (ConnectionError, asyncio.IncompleteReadError):
            results["errors"] += 1
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            continue
        results["latencies"].append(time.perf_counter() - started)
        results["statuses"][status] = results["statuses"].get(status, 0) + 1
        if status == 204 and fresh:
            accepted.append(message_id)
    writer.close()


def load_process(port, connections, seconds, redeliveries, start_at, queue) -> None:
    """One sending process: ``connections`` keep-alive connections."""
    bodies = sample_bodies()
    results = {"latencies": [], "statuses": {}, "errors": 0, "accepted_ids": []}

    async def run():
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(
                connection(port, deadline, redeliveries, bodies, results)
                for _ in range(connections)
            )
        )

    asyncio.run(run())
    queue.put(
        {
            "latencies": results["latencies"],
            "statuses": results["statuses"],
            "errors": results["errors"],
            "unique_accepted": len(results["accepted_ids"]),
        }
    )


def send_load(port: int, args, seconds: float) -> dict:
    """Run the load processes for ``seconds``; return their results merged."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    start_at = time.time() + 1.0
    per_process = [
        args.concurrency // args.load_processes
        + (1 if i < args.concurrency % args.load_processes else 0)
        for i in range(args.load_processes)
    ]
    processes = [
        multiprocessing.Process(
            target=load_process,
            args=(port, n, seconds, args.redeliveries, start_at, queue),
        )
        for n in per_process
        if n
    ]
    for process in processes:
        process.start()
    merged = empty_results()
    for _ in processes:
        merge(merged, queue.get())
    for process in processes:
        process.join()
    return merged


def measured_load(server: subprocess.Popen, port: int, args) -> dict:
    """One round against one server, with the CPU its processes and Redis used."""
    redis_pid = redis_server_pid()
    before = tree_cpu(server.pid), process_cpu(redis_pid)
    results = send_load(port, args, args.seconds / args.rounds)
    results["cpu"] = tree_cpu(server.pid) - before[0]
    results["redis_cpu"] = process_cpu(redis_pid) - before[1]
    return results


def empty_results() -> dict:
    return {
        "latencies": [],
        "statuses": {},
        "errors": 0,
        "unique_accepted": 0,
        "cpu": 0.0,
        "redis_cpu": 0.0,
    }


def merge(into: dict, part: dict) -> None:
    into["cpu"] += part.get("cpu", 0.0)
    into["redis_cpu"] += part.get("redis_cpu", 0.0)
    into["latencies"] += part["latencies"]
    into["errors"] += part["errors"]
    into["unique_accepted"] += part["unique_accepted"]
    for status, count in part["statuses"].items():
        into["statuses"][status] = into["statuses"].get(status, 0) + count


def summarize(name: str, results: dict, seconds: float) -> dict:
    latencies = sorted(results["latencies"])
    accepted = results["statuses"].get(204, 0)

    def pct(p: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    summary = {
        "rate": accepted / seconds,
        "p50": pct(0.50),
        "p99": pct(0.99),
        "max": latencies[-1] * 1000 if latencies else float("nan"),
    }
    print(
        f"{name}: {accepted} accepted in {seconds:.0f} s = {summary['rate']:,.0f}/s; "
        f"latency p50 {summary['p50']:.1f} ms, p99 {summary['p99']:.1f} ms, "
        f"max {summary['max']:.1f} ms; statuses {results['statuses']}, "
        f"connection errors {results['errors']}",
        flush=True,
    )
    answered = max(sum(results["statuses"].values()), 1)
    print(
        f"{name}: CPU per answered request {results['cpu'] / answered * 1e6:.0f} us "
        f"in gunicorn's processes, {results['redis_cpu'] / answered * 1e6:.0f} us "
        "in Redis",
        flush=True,
    )
    return summary


# -- the servers -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(app_path: str, env: dict, extra: list[str]) -> tuple:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            *extra,
            app_path,
        ],
        cwd=ROOT,
        env=dict(env, PORT=str(port)),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return process, port
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{app_path} did not start on port {port}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    args = parse_args()
    schema = f"bench_webhooks_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.database_url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = f"{args.database_url}?options=-csearch_path%3D{schema}"
    stream = f"bench-{uuid.uuid4().hex[:8]}:ingest"
    client = redis.Redis.from_url(args.redis_url)
    env = dict(
        os.environ,
        DATABASE_URL=url,
        REDIS_URL=args.redis_url,
        INGEST_STREAM=stream,
        EVENTSUB_SECRET=SECRET,
        SECRET_KEY="bench-secret-key-of-32-characters-or-more",
        TWITCH_CLIENT_ID="bench",
        TWITCH_CLIENT_SECRET="bench",
        SIMULATOR="0",
        WEB_CONCURRENCY=str(args.web_concurrency),
    )
    processes = []
    try:
        upgrade_schema(url)
        extra = ["--reuse-port"] if args.reuse_port else []
        web, port = start_gunicorn("wsgi:app", env, extra)
        processes.append(web)
        yardstick, yardstick_port = start_gunicorn(
            "hmac_only:app", env, [*extra, "--pythonpath", str(ROOT / "bench")]
        )
        processes.append(yardstick)

        def start_consumers():
            for number in range(args.consumers):
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "cli.py", "ingest", "--name", f"c{number}"],
                        cwd=ROOT,
                        env=env,
                    )
                )

        if args.ingest == "during":
            start_consumers()
        print(
            f"gunicorn.conf.py with {args.web_concurrency} workers for both; "
            f"{args.consumers} ingest consumers {args.ingest} the load; "
            f"{args.concurrency} senders in {args.load_processes} processes, "
            f"{args.seconds:.0f} s per server in {args.rounds} alternating rounds, "
            f"{args.redeliveries:.0%} redeliveries",
            flush=True,
        )
        ours_results = empty_results()
        hmac_results = empty_results()
        for _ in range(args.rounds):
            merge(ours_results, measured_load(web, port, args))
            merge(hmac_results, measured_load(yardstick, yardstick_port, args))
        ours = summarize("ours", ours_results, args.seconds)
        hmac_only = summarize("HMAC-only", hmac_results, args.seconds)
        for process in (web, yardstick):
            stop(process)
            processes.remove(process)
        if args.ingest == "after":
            start_consumers()

        drain_started = time.monotonic()
        while client.xlen(stream) and time.monotonic() - drain_started < 600:
            time.sleep(0.1)
        backlog = client.xlen(stream)
        drained = time.monotonic() - drain_started
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            total, distinct = connection.execute(
                sa.text("SELECT count(*), count(DISTINCT message_id) FROM events")
            ).one()
            rolled = connection.scalar(
                sa.text("SELECT coalesce(sum(count), 0) FROM event_counts")
            )
        engine.dispose()
        unique = ours_results["unique_accepted"]
        exact = backlog == 0 and total == distinct == rolled == unique
        print(
            f"ingest: drained {drained:.1f} s after the load; stored {total} rows "
            f"({distinct} distinct message ids, rollups {rolled}) for {unique} "
            f"unique messages accepted; dead letters "
            f"{client.xlen(dead_letter_stream(stream))}",
            flush=True,
        )
        print("command: " + shlex.join([sys.executable, *sys.argv]))
        print(
            f"ratio {ours['rate'] / hmac_only['rate']:.2f} "
            f"(ours {ours['rate']:,.0f}/s, HMAC-only {hmac_only['rate']:,.0f}/s), "
            f"p99 {ours['p99']:.1f} ms, exactly once: {'yes' if exact else 'no'}"
        )
    finally:
        for process in processes:
            stop(process)
        client.delete(stream, dead_letter_stream(stream))
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    main()
