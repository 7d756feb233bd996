"""Fan-out across web processes, against real Redis, Postgres and gunicorn.

Each test starts real gunicorn processes (the gevent workers of
gunicorn.conf.py) on Postgres and Redis, opens websockets on them, and
publishes frames the way ingest does: store the events, commit, then
PUBLISH ``{"kind": "events", "events": [...]}`` to the streamer's channel.
Every test follows a streamer of its own, since Redis channels are shared
by every database number on the server.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
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
import sqlalchemy.orm as so
import websocket
from prometheus_client import REGISTRY

from app import fanout
from app.events import build_rows
from app.fanout import feed_channel
from app.fanout import pushed_key
from app.store import event_to_json
from app.store import store_events
from conftest import free_port
from conftest import load_sample
from conftest import make_test_app
from conftest import production_env
from conftest import serve

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def store(postgres_url):
    engine = sa.create_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def publisher():
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def streamer() -> str:
    return f"fan_{uuid.uuid4().hex[:12]}"


class Web:
    """A gunicorn process serving the app, as the Procfile's web runs it."""

    def __init__(self, postgres_url: str, log: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = production_env(
            postgres_url,
            REDIS_URL=REDIS_URL,
            WEB_CONCURRENCY="1",
            LOG_LEVEL="WARNING",
            **settings,
        )
        self.log = log
        command = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{self.port}"]
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [*command, "wsgi:app"],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(self.log.read_text())
            try:
                requests.get(self.url + "/api/events?limit=1", timeout=10)
                return
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.1)
        raise AssertionError("gunicorn did not start:\n" + self.log.read_text())

    def connect(self, login: str, after: str | None = None, **options):
        url = self.url.replace("http://", "ws://") + f"/ws/streamers/{login}"
        if after is not None:
            url += f"?after={after}"
        return websocket.create_connection(url, timeout=10, **options)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def start_web(postgres_url, tmp_path):
    started = []

    def start(**settings) -> Web:
        web = Web(postgres_url, tmp_path / f"web{len(started)}.log", **settings)
        started.append(web)
        return web

    yield start
    for web in started:
        web.stop()


def store_and_publish(engine, publisher, login, message_ids, padding=0) -> list:
    """Store follows as ingest does, commit, then publish them in one frame."""
    now = datetime.now(UTC)
    rows = []
    for message_id in message_ids:
        body = load_sample("channel.follow.v2")
        body["event"]["broadcaster_user_login"] = login
        if padding:
            body["event"]["padding"] = "x" * padding
        rows += build_rows(message_id, body, now, now)
    with so.Session(engine) as session:
        events = [event_to_json(e) for e in store_events(session, rows)]
        session.commit()
    frame = json.dumps({"kind": "events", "events": events})
    publisher.publish(feed_channel(login), frame)
    return events


def read_frame(ws) -> dict:
    while True:
        frame = json.loads(ws.recv())
        if frame["kind"] != "ping":
            return frame


def read_events(ws) -> list[dict]:
    frame = read_frame(ws)
    assert frame["kind"] == "events", frame
    return frame["events"]


def test_a_frame_published_once_reaches_clients_on_both_processes(
    start_web, store, publisher, streamer
):
    webs = [start_web(), start_web()]
    clients = [web.connect(streamer) for web in webs for _ in range(3)]
    for ws in clients:
        assert read_events(ws) == []

    events = store_and_publish(store, publisher, streamer, [f"{streamer}-one"])

    for ws in clients:
        assert read_events(ws) == events
        ws.close()
    deadline = time.monotonic() + 5
    key = pushed_key(f"{streamer}-one")
    while publisher.get(key) != "6" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert publisher.get(key) == "6"
    assert 6 * 24 * 3600 < publisher.ttl(key) <= 7 * 24 * 3600


def test_a_slow_client_is_told_to_resync_and_stalls_nobody(
    start_web, store, publisher, streamer
):
    web = start_web(FEED_QUEUE="8")
    small_buffer = ((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)
    slow = web.connect(streamer, sockopt=small_buffer)
    fast = web.connect(streamer)
    assert read_events(slow) == read_events(fast) == []

    received = {}

    def read_fast():
        while len(received) < 120:
            for event in read_events(fast):
                received[event["message_id"]] = time.monotonic()

    reader = threading.Thread(target=read_fast, daemon=True)
    reader.start()
    published = {}
    stored = []
    for index in range(120):
        message_id = f"{streamer}-{index:03}"
        published[message_id] = time.monotonic()
        stored += store_and_publish(
            store, publisher, streamer, [message_id], padding=64_000
        )
        time.sleep(0.01)
    reader.join(timeout=30)
    fast.close()

    assert sorted(received) == sorted(published)
    late = max(received[m] - published[m] for m in published)
    assert late < 2.0, f"the reading client waited {late:.2f} s for a frame"

    seen = []
    while True:
        frame = read_frame(slow)
        if frame["kind"] == "resync":
            break
        seen += frame["events"]
    assert len(seen) < len(stored)
    last = seen[-1]["cursor"] if seen else frame["after"]
    assert frame["after"] == last
    slow.close()

    again = web.connect(streamer, after=last)
    rest = []
    while len(seen) + len(rest) < len(stored):
        rest += read_events(again)
    again.close()
    assert [e["cursor"] for e in seen + rest] == [e["cursor"] for e in stored]


def test_reconnecting_with_after_misses_nothing_and_repeats_nothing(
    start_web, store, publisher, streamer
):
    webs = [start_web(), start_web()]
    stored = []
    done = threading.Event()

    def publish():
        for index in range(150):
            ids = [f"{streamer}-{index:03}-{n}" for n in range(1 + index % 3)]
            stored.extend(store_and_publish(store, publisher, streamer, ids))
            time.sleep(0.01)
        done.set()

    seen = []
    ws = webs[0].connect(streamer)
    seen += read_events(ws)
    publisher_thread = threading.Thread(target=publish, daemon=True)
    publisher_thread.start()
    hops = 0
    while not done.is_set():
        # Read a few frames, then drop and come back, often to the other
        # process, from the last cursor seen.
        ws.settimeout(1)
        try:
            for _ in range(1 + hops % 4):
                seen += read_events(ws)
        except websocket.WebSocketTimeoutException:
            continue
        ws.close()
        hops += 1
        after = seen[-1]["cursor"] if seen else None
        ws = webs[hops % 2].connect(streamer, after=after)
        seen += read_events(ws)
    while len(seen) < len(stored):
        seen += read_events(ws)
    ws.close()
    publisher_thread.join()

    assert hops > 5
    cursors = [e["cursor"] for e in seen]
    assert len(cursors) == len(set(cursors)), "an event was sent twice"
    assert cursors == [e["cursor"] for e in stored]


@pytest.fixture
def serve_app(sqlite_url):
    """The app served in this process over HTTP, on SQLite, with a Redis relay."""
    started = []

    def start(redis_url: str = REDIS_URL, **overrides):
        live, server = serve(
            lambda url: make_test_app(sqlite_url, REDIS_URL=redis_url, **overrides)
        )
        started.append((live, server))
        return live

    yield start
    for live, server in started:
        server.shutdown()
        live.app.extensions["fanout"].get().stop()
        live.app.extensions["db"].engine.dispose()


def connect_to(live, login: str, **options):
    url = live.url.replace("http://", "ws://") + f"/ws/streamers/{login}"
    return websocket.create_connection(url, timeout=10, **options)


def test_a_page_that_stopped_reading_is_closed(
    serve_app, publisher, streamer, monkeypatch
):
    monkeypatch.setattr(fanout, "ABANDON_SECONDS", 0.5)
    live = serve_app(FEED_QUEUE=4)
    small_buffer = ((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)
    stalled = connect_to(live, streamer, sockopt=small_buffer)
    assert read_events(stalled) == []
    engine = live.app.extensions["db"].engine
    relay = live.app.extensions["fanout"].get()
    assert len(relay.feeds_of(streamer)) == 1

    for index in range(60):
        store_and_publish(
            engine, publisher, streamer, [f"{streamer}-{index}"], padding=64_000
        )
    deadline = time.monotonic() + 10
    while relay.feeds_of(streamer) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert relay.feeds_of(streamer) == []
    stalled.close()


@pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server to restart"
)
def test_after_redis_comes_back_feeds_catch_up(serve_app, tmp_path, streamer):
    port = free_port()
    own_redis = start_redis(port, tmp_path)
    try:
        live = serve_app(redis_url=f"redis://127.0.0.1:{port}/0")
        ws = connect_to(live, streamer)
        assert read_events(ws) == []
        engine = live.app.extensions["db"].engine

        own_redis.terminate()
        own_redis.wait(timeout=10)
        # Stored while Redis is down: the publish never happens.
        with pytest.raises(redis.ConnectionError):
            store_and_publish(
                engine, redis.Redis(port=port), streamer, [f"{streamer}-missed"]
            )
        own_redis = start_redis(port, tmp_path)

        ws.settimeout(15)
        assert [e["message_id"] for e in read_events(ws)] == [f"{streamer}-missed"]
        client = redis.Redis(port=port, decode_responses=True)
        store_and_publish(engine, client, streamer, [f"{streamer}-after"])
        assert [e["message_id"] for e in read_events(ws)] == [f"{streamer}-after"]
        client.close()
        ws.close()
    finally:
        own_redis.terminate()
        own_redis.wait(timeout=10)


def start_redis(port: int, directory: Path) -> subprocess.Popen:
    """A throwaway Redis server of this test's own, on ``port``."""
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        + ["--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            client.close()
            return process
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_without_redis_a_page_is_told_to_come_back_later(serve_app, streamer):
    live = serve_app(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    ws = connect_to(live, streamer)
    opcode, data = ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(data[:2], "big") == 1013


def test_open_feeds_are_counted_for_metrics(serve_app, streamer):
    live = serve_app()

    def gauge() -> float:
        return REGISTRY.get_sample_value("streamfeed_websocket_clients")

    before = gauge()
    pages = [connect_to(live, streamer) for _ in range(3)]
    for ws in pages:
        read_events(ws)
    assert gauge() == before + 3
    for ws in pages:
        ws.close()
    deadline = time.monotonic() + 5
    while gauge() != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gauge() == before


def test_bad_and_empty_frames_are_skipped(serve_app, publisher, streamer):
    live = serve_app()
    ws = connect_to(live, streamer)
    assert read_events(ws) == []
    channel = fanout.feed_channel(streamer)
    for text in ("not json", '{"kind": "events", "events": []}', '{"kind": "x"}'):
        publisher.publish(channel, text)
    engine = live.app.extensions["db"].engine
    events = store_and_publish(engine, publisher, streamer, [f"{streamer}-ok"])
    assert read_events(ws) == events
    ws.close()


def test_a_page_opening_as_the_last_one_closes_keeps_its_channel(publisher, streamer):
    """The last page of a streamer closes while another opens, many times.

    Whichever goes first, the page that stays open must still be subscribed:
    an unsubscribe sent after the new page's subscribe would leave it deaf.
    """
    relay = fanout.RedisRelay(REDIS_URL, 8)
    channel = feed_channel(streamer)
    frame = json.dumps({"kind": "events", "events": [{"cursor": 1}]})
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # let the threads interleave finely
    done = threading.Event()

    def others():
        # Other streamers' pages come and go: their (un)subscribes contend.
        while not done.is_set():
            with relay.open(f"{streamer}_{uuid.uuid4().hex[:6]}"):
                pass

    busy = [threading.Thread(target=others) for _ in range(2)]
    for thread in busy:
        thread.start()
    try:
        for _ in range(1000):
            closing = relay.open(streamer)
            closing.__enter__()
            both = threading.Barrier(2)

            def close(closing=closing, both=both):
                both.wait()
                closing.__exit__(None, None, None)

            thread = threading.Thread(target=close)
            thread.start()
            both.wait()
            with relay.open(streamer) as feed:
                thread.join()
                time.sleep(0.001)  # an unsubscribe sent last reaches Redis
                assert publisher.publish(channel, frame), "the open page is deaf"
                assert feed.take(2)
    finally:
        done.set()
        for thread in busy:
            thread.join()
        sys.setswitchinterval(switch)
        relay.stop()
