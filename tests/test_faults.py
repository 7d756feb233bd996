"""Faults of the production pipeline, with real processes and servers.

- an ingest consumer killed (SIGKILL) in the middle of a batch;
- Postgres stopped while webhooks keep coming (a throwaway server of our
  own, started with initdb and pg_ctl, never the shared one);
- Redis stopped (a throwaway redis-server of our own);
- the same message delivered to two web processes at once.

Each test uses a stream of its own in the Redis database of TEST_REDIS_URL.
"""

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC
from datetime import datetime
from pathlib import Path

import pytest
import redis
import requests
import sqlalchemy as sa

from app.db import create_engine
from app.db import upgrade_schema
from app.ingest import GROUP
from app.ingest import buffer_notification
from app.ingest import dead_letter_stream
from app.store import FEED_ORDER_LOCK
from conftest import TEST_REDIS_URL
from conftest import compact
from conftest import free_port
from conftest import load_sample
from conftest import make_test_app
from conftest import now_timestamp
from conftest import post_sample
from conftest import production_env
from conftest import signed_headers

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.postgres


def start_ingest(env: dict, name: str, log: Path, **settings) -> subprocess.Popen:
    env = dict(env, **{k: str(v) for k, v in settings.items()})
    return subprocess.Popen(
        [sys.executable, "cli.py", "ingest", "--name", name],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def follow_body(index: int) -> bytes:
    body = load_sample("channel.follow.v2")
    body["event"]["user_id"] = str(1000 + index)
    body["event"]["user_login"] = f"follower_{index}"
    body["event"]["user_name"] = f"Follower_{index}"
    return compact(body)


def fill_stream(client, stream: str, message_ids: list[str]) -> None:
    """Buffer notifications as the webhook does, without HTTP."""
    now = datetime.now(UTC)
    timestamp = now_timestamp()
    for index, message_id in enumerate(message_ids):
        buffer_notification(
            client, stream, message_id, timestamp, follow_body(index), now
        )


def counts(engine) -> tuple[int, int, int]:
    """Stored events, distinct message ids, and the rolled-up total."""
    with engine.connect() as connection:
        total, distinct = connection.execute(
            sa.text("SELECT count(*), count(DISTINCT message_id) FROM events")
        ).one()
        rolled = connection.scalar(
            sa.text("SELECT coalesce(sum(count), 0) FROM event_counts")
        )
    return total, distinct, rolled


LOCK = {"key": FEED_ORDER_LOCK}


def waiting_for_lock(engine) -> bool:
    """Whether some session waits for the lock that orders storing."""
    # A bigint advisory key shows as its high and low 32 bits.
    query = sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND classid = :high AND objid = :low AND objsubid = 1"
    )
    key = {"high": FEED_ORDER_LOCK >> 32, "low": FEED_ORDER_LOCK & 0xFFFFFFFF}
    with engine.connect() as connection:
        return connection.scalar(query, key) > 0


@pytest.fixture
def stream():
    name = f"test-{uuid.uuid4().hex[:12]}:ingest"
    client = redis.Redis.from_url(TEST_REDIS_URL)
    yield name
    client.delete(name, dead_letter_stream(name))
    client.close()


@pytest.fixture
def pg_app(postgres_url, stream):
    app = make_test_app(postgres_url, REDIS_URL=TEST_REDIS_URL, INGEST_STREAM=stream)
    yield app
    app.extensions["db"].engine.dispose()


def test_consumer_killed_mid_batch_loses_nothing_and_stores_nothing_twice(
    pg_app, postgres_url, stream, tmp_path
):
    client = pg_app.extensions["redis"]
    unique = [f"kill-{uuid.uuid4()}" for _ in range(12000)]
    # Every tenth message is delivered twice, as Twitch redelivers.
    fill_stream(client, stream, unique + unique[::10])
    engine = pg_app.extensions["db"].engine
    env = production_env(postgres_url, INGEST_STREAM=stream)
    log = tmp_path / "ingest.log"

    victim = start_ingest(
        env, "victim", log, INGEST_BATCH_SIZE=200, INGEST_CLAIM_IDLE_MS=500
    )

    # Once the victim has stored something, hold the lock every storing
    # transaction takes first, so its next batch is read but cannot commit:
    # the kill then lands mid-batch every time, however fast the machine.
    wait_for(lambda: counts(engine)[0] > 0, 60, "the victim to store a batch")
    with engine.connect() as blocker:
        blocker.execute(sa.text("SELECT pg_advisory_lock(:key)"), LOCK)
        wait_for(lambda: waiting_for_lock(engine), 60, "the victim's next batch")
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        blocker.execute(sa.text("SELECT pg_advisory_unlock(:key)"), LOCK)
        blocker.commit()
    left_pending = client.xpending(stream, GROUP)["pending"]
    stored_before = counts(engine)[0]
    assert left_pending > 0, "the consumer was not killed mid-batch"
    assert 0 < stored_before < len(unique), "the consumer was not killed mid-batch"

    heir = start_ingest(
        env, "heir", log, INGEST_BATCH_SIZE=200, INGEST_CLAIM_IDLE_MS=500
    )
    try:
        wait_for(lambda: client.xlen(stream) == 0, 90, "the heir to drain the stream")
    finally:
        stop(heir)
    total, distinct, rolled = counts(engine)
    assert (total, distinct, rolled) == (len(unique), len(unique), len(unique))
    assert client.xpending(stream, GROUP)["pending"] == 0
    assert client.xlen(dead_letter_stream(stream)) == 0
    assert b"claimed" in log.read_bytes()


# -- Postgres down ---------------------------------------------------------


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class ThrowawayPostgres:
    """A Postgres server of our own in a temporary directory."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None

    def run(self, *args: str) -> None:
        command = list(args)
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user:
            shutil.chown(self.root, self.user)
        self.run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        options += " -c fsync=off"
        self.run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def throwaway_postgres():
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql")
    root = Path(tempfile.mkdtemp(prefix="streamfeed-pg-"))
    server = ThrowawayPostgres(bin_dir, root)
    server.init()
    server.start()
    yield server
    try:
        server.stop()
    except subprocess.CalledProcessError:
        pass  # already stopped
    shutil.rmtree(root, ignore_errors=True)


def test_postgres_down_webhooks_still_accepted_then_backlog_drains_exactly(
    throwaway_postgres, stream, tmp_path
):
    upgrade_schema(throwaway_postgres.url)
    app = make_test_app(
        throwaway_postgres.url, REDIS_URL=TEST_REDIS_URL, INGEST_STREAM=stream
    )
    web = app.test_client()
    client = app.extensions["redis"]
    env = production_env(throwaway_postgres.url, INGEST_STREAM=stream)
    log = tmp_path / "ingest.log"
    consumer = start_ingest(env, "steady", log, INGEST_BATCH_SIZE=50)
    engine = create_engine(throwaway_postgres.url)
    try:
        sent = []
        for _ in range(30):
            sent.append(str(uuid.uuid4()))
            assert post_sample(web, "channel.follow.v2", sent[-1]).status_code == 204
        wait_for(lambda: counts(engine)[0] == 30, 30, "the first events stored")
        engine.dispose()

        throwaway_postgres.stop()
        for index in range(120):
            if index % 5 == 4:  # a redelivery of an earlier message
                message_id = sent[-3]
            else:
                message_id = str(uuid.uuid4())
                sent.append(message_id)
            response = post_sample(web, "channel.follow.v2", message_id)
            assert response.status_code == 204
        ready = web.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["down"] == ["database"]
        wait_for(
            lambda: log.read_bytes().count(b"database unavailable") >= 3,
            30,
            "the consumer to retry a few times",
        )
        assert client.xlen(stream) > 0
        assert counts_after_restart_are_pending(client, stream)

        throwaway_postgres.start()
        wait_for(lambda: client.xlen(stream) == 0, 60, "the backlog to drain")
        assert counts(engine) == (len(sent), len(sent), len(sent))
        assert consumer.poll() is None, "the consumer gave up"
    finally:
        stop(consumer)
        engine.dispose()
        app.extensions["db"].engine.dispose()


def counts_after_restart_are_pending(client, stream: str) -> bool:
    """The consumer holds its batch unacknowledged while the database is down."""
    return client.xpending(stream, GROUP)["pending"] > 0


# -- Redis down ------------------------------------------------------------


def test_redis_down_answers_503_names_it_and_stores_nothing(
    postgres_url, stream, caplog
):
    server_bin = shutil.which("redis-server")
    if server_bin is None:
        pytest.skip("no redis-server")
    port = free_port()
    server = subprocess.Popen(
        [server_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for(lambda: ping(url), 10, "redis-server to start")
        app = make_test_app(postgres_url, REDIS_URL=url, INGEST_STREAM=stream)
        web = app.test_client()
        assert post_sample(web, "channel.follow.v2", "while-up").status_code == 204
        assert web.get("/readyz").status_code == 200
    finally:
        server.terminate()
        server.wait(10)

    response = post_sample(web, "channel.follow.v2", "while-down")
    assert response.status_code == 503
    assert "Redis unavailable" in caplog.text
    ready = web.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["down"] == ["redis"]
    with app.extensions["db"].engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM events")) == 0
    app.extensions["db"].engine.dispose()


def ping(url: str) -> bool:
    try:
        return redis.Redis.from_url(url).ping()
    except redis.RedisError:
        return False


# -- one message, two web processes ----------------------------------------


@pytest.mark.parametrize("buffered", [True, False], ids=["redis", "in-request"])
def test_same_message_to_two_web_processes_at_once_is_stored_once(
    postgres_url, stream, tmp_path, buffered
):
    env = production_env(postgres_url, INGEST_STREAM=stream)
    if not buffered:
        env.pop("REDIS_URL")
    ports = [free_port(), free_port()]
    webs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "wsgi:app",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--threads",
                "8",
            ],
            cwd=ROOT,
            env=env,
            stdout=(tmp_path / f"web-{port}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for port in ports
    ]
    app = make_test_app(postgres_url)  # empties the tables
    engine = app.extensions["db"].engine
    consumer = None
    try:
        for port in ports:
            wait_for(lambda p=port: healthy(p), 30, f"web process on {port}")
        messages = [str(uuid.uuid4()) for _ in range(25)]
        statuses = []
        for index, message_id in enumerate(messages):
            body = follow_body(index)
            headers = signed_headers(body, message_id=message_id)
            statuses += deliver_at_once(ports, body, headers)
        assert statuses == [204] * (2 * len(messages))

        if buffered:
            consumer = start_ingest(env, "one", tmp_path / "ingest.log")
            client = redis.Redis.from_url(TEST_REDIS_URL)
            wait_for(lambda: client.xlen(stream) == 0, 30, "ingest to drain")
            client.close()
        assert counts(engine) == (len(messages), len(messages), len(messages))
    finally:
        for process in [*webs, consumer]:
            if process is not None:
                stop(process)
        engine.dispose()


def healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
    except requests.RequestException:
        return False


def deliver_at_once(ports: list[int], body: bytes, headers: dict) -> list[int]:
    """POST the same delivery to every port at the same moment."""
    barrier = threading.Barrier(len(ports))
    statuses: list[int] = []

    def send(port: int) -> None:
        barrier.wait()
        response = requests.post(
            f"http://127.0.0.1:{port}/webhooks/eventsub",
            data=body,
            headers=headers,
            timeout=10,
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=send, args=(p,)) for p in ports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses
