"""Fan-out: N websocket clients on one streamer, events published at a rate.

Starts the web process as the Procfile does (gunicorn with gunicorn.conf.py,
one gevent worker unless --workers says more, on 127.0.0.1) against
PostgreSQL and Redis, opens N websocket clients on one streamer, then
publishes events the way ingest does: store the rows
(app.store.store_events, in batches, before the timed part), commit,
PUBLISH one frame per event to ``streamfeed:feed:<login>``. The publisher
stands in for ``cli.py ingest`` (whose own cost bench/ingest.py measures)
so that the rate is exact and one frame carries one event; latency is
measured from just before the PUBLISH to the client's read of the frame
(one clock: every message id carries its publish time).

    .venv/bin/python bench/fanout.py [--clients 1000] [--rate 20] [--seconds 20]
        [--keep-up 100,200,300,400,600,800,1000] [--keep-up-rate 100]

Prints, for the main run: delivered frames, latency p50/p99/max, resyncs,
and the web workers' memory per connection (RSS with N clients connected
minus RSS before, divided by N). Then, at --keep-up-rate events a second,
tries each client count in --keep-up for --keep-up-seconds and reports the
largest that keeps up: every client got every event, none was told to
resync, p99 stayed under --keep-up-p99 ms, and the publisher held 95% of
the rate.

The clients are one selectors loop of raw websocket connections that only
find message ids in the bytes they read, so the client costs as little as
possible of the two cores it shares with the server.
"""

import argparse
import base64
import multiprocessing
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
DEFAULT_REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
# A message id is <login>:<sequence>:<publish time in ns>.
MESSAGE = re.compile(rb'"message_id": "bench_[0-9a-f]+:(\d+):(\d+)"')
RESYNC = b'"kind": "resync"'


def main() -> None:
    args = parse_args()
    raise_file_limit(args.clients, max(args.keep_up or [0]))
    schema = f"bench_fanout_{uuid.uuid4().hex[:8]}"
    url = make_schema(args.database_url, schema)
    web = Web(url, args.redis_url, args.workers)
    print(f"load average at the start (1, 5, 15 min): {os.getloadavg()}")
    try:
        print(
            f"web: gunicorn, {args.workers} gevent worker(s) "
            f"(pids {web.worker_pids()}), "
            f"database schema {schema}, Redis {args.redis_url}"
        )
        print(
            "publisher: stores the run's events in batches of 500 and commits, "
            "then PUBLISHes one frame per event at the rate (ingest's "
            "contract, at an exact rate)"
        )
        # Warm up first: imports, pools and caches that the first feeds
        # create once would otherwise count as memory per connection.
        run(web, url, args.redis_url, 20, 10, 1)
        result = run(web, url, args.redis_url, args.clients, args.rate, args.seconds)
        print_result(result, args.clients, args.rate)
        largest = None
        for clients in args.keep_up:
            kept = run(
                web,
                url,
                args.redis_url,
                clients,
                args.keep_up_rate,
                args.keep_up_seconds,
            )
            ok = kept.keeps_up(args.keep_up_p99)
            print(
                f"keep-up {clients:>5} clients at {args.keep_up_rate:g}/s: "
                f"{'yes' if ok else 'no '}  {kept.summary()}"
            )
            if not ok:
                break
            largest = clients
        if args.keep_up:
            print(
                f"largest client count keeping up at {args.keep_up_rate:g} "
                f"events/s: {largest if largest is not None else 'none tried passed'}"
            )
    finally:
        web.stop()
        drop_schema(args.database_url, schema)
    print(f"load average at the end (1, 5, 15 min): {os.getloadavg()}")
    print("command: " + " ".join([sys.executable, *sys.argv]))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="events/s")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--keep-up",
        type=lambda text: [int(n) for n in text.split(",") if n],
        default=[100, 200, 300, 400, 600, 800, 1000],
        help="client counts to try at --keep-up-rate ('' to skip)",
    )
    parser.add_argument("--keep-up-rate", type=float, default=100.0)
    parser.add_argument("--keep-up-seconds", type=float, default=10.0)
    parser.add_argument("--keep-up-p99", type=float, default=500.0, help="ms")
    parser.add_argument(
        "--workers", type=int, default=1, help="gunicorn workers (WEB_CONCURRENCY)"
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    args = parser.parse_args()
    if args.clients < 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error("--clients, --rate and --seconds must be above 0")
    if args.seconds > 600 or args.keep_up_seconds > 600:
        parser.error("a run is bounded to 600 seconds")
    return args


def raise_file_limit(*clients: int) -> None:
    """Each client holds a socket here and one in the web worker."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(clients) + 1000
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            sys.exit(f"the file-descriptor limit {hard} is below {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def make_schema(database_url: str, schema: str) -> str:
    import sqlalchemy as sa

    from app.db import upgrade_schema

    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    url = f"{database_url}?options=-csearch_path%3D{schema}"
    upgrade_schema(url)
    return url


def drop_schema(database_url: str, schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


class Web:
    """gunicorn as the Procfile runs it, one worker, on loopback."""

    def __init__(self, database_url: str, redis_url: str, workers: int) -> None:
        self.workers = workers
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = dict(os.environ)
        env.update(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            EVENTSUB_SECRET="bench-secret-0123456789",
            SECRET_KEY="bench-secret-key-of-32-characters-or-more",
            TWITCH_CLIENT_ID="bench-client-id",
            TWITCH_CLIENT_SECRET="bench-client-secret",
            WEB_CONCURRENCY=str(workers),
            WEB_CONNECTIONS="5000",
            LOG_LEVEL="WARNING",
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{self.port}"]
            + ["wsgi:app"],
            cwd=ROOT,
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                if len(self.worker_pids()) == self.workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not start")

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def worker_cpu_seconds(self) -> float:
        """User and system CPU time the workers have used so far."""
        total = 0
        for pid in self.worker_pids():
            fields = Path(f"/proc/{pid}/stat").read_text().split()
            total += int(fields[13]) + int(fields[14])
        return total / os.sysconf("SC_CLK_TCK")

    def worker_rss_kib(self) -> int:
        """Resident memory of the workers together."""
        total = 0
        for pid in self.worker_pids():
            status = Path(f"/proc/{pid}/status").read_text()
            line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
            total += int(line.split()[1])
        return total

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Client:
    sock: socket.socket
    buffer: bytes = b""
    greeted: bool = False
    received: int = 0
    resynced: bool = False
    closed: bool = False


@dataclass
class Result:
    clients: int
    expected: int
    rate: float
    latencies_ns: list[int] = field(default_factory=list)
    received: list[int] = field(default_factory=list)
    resyncs: int = 0
    closed: int = 0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    published_rate: float = 0.0
    worker_cpu: float = 0.0
    elapsed: float = 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies_ns:
            return float("nan")
        ordered = sorted(self.latencies_ns)
        index = min(len(ordered) - 1, int(fraction * len(ordered)))
        return ordered[index] / 1e6

    def complete(self) -> int:
        return sum(1 for count in self.received if count >= self.expected)

    def keeps_up(self, p99_ms: float) -> bool:
        return (
            self.complete() == self.clients
            and self.resyncs == 0
            and self.percentile(0.99) < p99_ms
            and self.published_rate >= 0.95 * self.rate
        )

    def summary(self) -> str:
        return (
            f"p50 {self.percentile(0.5):.1f} ms, p99 {self.percentile(0.99):.1f} ms, "
            f"max {self.percentile(1.0):.1f} ms, complete {self.complete()}/"
            f"{self.clients}, resyncs {self.resyncs}, closed {self.closed}, "
            f"published {self.published_rate:.1f}/s, "
            f"workers' CPU {self.worker_cpu / max(1e-9, self.elapsed):.0%} "
            f"({self.cpu_per_delivery_us():.1f} us a delivery)"
        )

    def cpu_per_delivery_us(self) -> float:
        return self.worker_cpu / max(1, len(self.latencies_ns)) * 1e6


def run(web, database_url, redis_url, clients, rate, seconds) -> Result:
    login = f"bench_{uuid.uuid4().hex[:10]}"
    expected = max(1, int(rate * seconds))
    result = Result(clients, expected, rate)
    result.rss_before_kib = web.worker_rss_kib()
    selector = selectors.DefaultSelector()
    pool = connect_all(web.port, login, clients, selector)
    result.rss_after_kib = web.worker_rss_kib()

    took = multiprocessing.Value("d", 0.0)
    publisher = multiprocessing.Process(
        target=publish, args=(database_url, redis_url, login, rate, expected, took)
    )
    started = time.monotonic()
    cpu_before = web.worker_cpu_seconds()
    publisher.start()
    # Read until every event is in, 5 s after the publisher is done at most.
    deadline = started + 3 * seconds + 10
    while time.monotonic() < deadline:
        if not publisher.is_alive():
            deadline = min(deadline, time.monotonic() + 5)
        for key, _ in selector.select(timeout=0.2):
            read(key.data, result, selector)
        if not publisher.is_alive() and all(
            c.received >= expected or c.resynced or c.closed for c in pool
        ):
            break
    publisher.join()
    result.worker_cpu = web.worker_cpu_seconds() - cpu_before
    result.elapsed = time.monotonic() - started
    result.published_rate = expected / max(1e-9, took.value)
    result.received = [c.received for c in pool]
    result.resyncs = sum(c.resynced for c in pool)
    result.closed = sum(c.closed and not c.resynced for c in pool)
    for client in pool:
        client.sock.close()
    selector.close()
    time.sleep(1.0)  # let the worker notice and unsubscribe
    return result


def connect_all(port, login, count, selector) -> list[Client]:
    """Open ``count`` websockets, 50 handshakes at a time; wait for greetings."""
    pool = []
    for start in range(0, count, 50):
        batch = [handshake(port, login) for _ in range(min(50, count - start))]
        for sock in batch:
            client = Client(sock)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, client)
            pool.append(client)
        wait_greeted(batch_clients := pool[start:], selector)
        del batch_clients
    return pool


def handshake(port: int, login: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/streamers/{login} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("the server closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {head[:80]!r}")
    return sock


def wait_greeted(clients: list[Client], selector) -> None:
    """The first frame proves the subscription is confirmed."""
    deadline = time.monotonic() + 60
    while any(not c.greeted for c in clients):
        if time.monotonic() > deadline:
            raise RuntimeError("clients were not greeted within 60 s")
        for key, _ in selector.select(timeout=0.5):
            client = key.data
            try:
                chunk = client.sock.recv(65536)
            except BlockingIOError:
                continue
            client.greeted = client.greeted or bool(chunk)


def read(client: Client, result: Result, selector) -> None:
    try:
        chunk = client.sock.recv(262144)
    except BlockingIOError:
        return
    except OSError:
        chunk = b""
    if not chunk:
        client.closed = True
        selector.unregister(client.sock)
        return
    now = time.time_ns()
    data = client.buffer + chunk
    end = 0
    for match in MESSAGE.finditer(data):
        result.latencies_ns.append(now - int(match.group(2)))
        client.received += 1
        end = match.end()
    if RESYNC in data:
        client.resynced = True
    client.buffer = data[max(end, len(data) - 200) :]


def publish(database_url, redis_url, login, rate, count, took) -> None:
    """Store ``count`` follows, commit, then publish them at ``rate`` a second.

    Storing first, in batches as ingest does, keeps the publisher's own cost
    out of the rate on two shared cores; each frame is still the stored
    rows as ``event_to_json`` gives them, published after the commit.
    """
    import json

    import redis
    import sqlalchemy.orm as so

    from app.db import create_engine
    from app.events import build_rows
    from app.fanout import feed_channel
    from app.simulator.messages import SAMPLES_DIR
    from app.store import event_to_json
    from app.store import store_events

    body = json.loads((SAMPLES_DIR / "channel.follow.v2.json").read_text())
    body["event"]["broadcaster_user_login"] = login
    engine = create_engine(database_url)
    client = redis.Redis.from_url(redis_url)
    channel = feed_channel(login)
    events = []
    with so.Session(engine) as session:
        for start in range(0, count, 500):
            now = datetime.now(UTC)
            rows = []
            for sequence in range(start, min(count, start + 500)):
                # The id's TIME is replaced by the publish time in the frame.
                rows += build_rows(f"{login}:{sequence}:TIME", body, now, now)
            events += [event_to_json(e) for e in store_events(session, rows)]
            session.commit()
    started = time.monotonic()
    for sequence, event in enumerate(events):
        pause = started + sequence / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        text = json.dumps({"kind": "events", "events": [event]})
        client.publish(channel, text.replace("TIME", str(time.time_ns()), 1))
    took.value = time.monotonic() - started
    engine.dispose()
    client.close()


def print_result(result: Result, clients: int, rate: float) -> None:
    per_connection = (result.rss_after_kib - result.rss_before_kib) / clients
    deliveries = len(result.latencies_ns)
    print(
        f"main run: {clients} clients, {rate:g} events/s, "
        f"{result.expected} events, {deliveries} deliveries "
        f"({deliveries / max(1, result.expected * clients):.1%} of expected)"
    )
    print(
        f"publish-to-client latency: p50 {result.percentile(0.5):.1f} ms, "
        f"p90 {result.percentile(0.9):.1f} ms, p99 {result.percentile(0.99):.1f} ms, "
        f"max {result.percentile(1.0):.1f} ms"
    )
    print(
        f"web workers' CPU {result.worker_cpu:.1f} s in {result.elapsed:.1f} s, "
        f"{result.cpu_per_delivery_us():.1f} us per delivery"
    )
    print(
        f"resyncs {result.resyncs}, closed {result.closed}; web workers' RSS "
        f"{result.rss_before_kib / 1024:.1f} MiB before, "
        f"{result.rss_after_kib / 1024:.1f} MiB with {clients} clients: "
        f"{per_connection:.1f} KiB per connection"
    )


if __name__ == "__main__":
    main()
