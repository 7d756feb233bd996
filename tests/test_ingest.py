"""Buffered ingest: webhook to Redis stream, consumers to the database.

Runs against the real Redis named by TEST_REDIS_URL (each test on a stream
of its own) and both databases.
"""

import json
import logging
import os
import threading
import time
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
import redis
import sqlalchemy as sa
import sqlalchemy.orm as so

from app.events import format_timestamp
from app.feedbus import feed_channel
from app.ingest import GROUP
from app.ingest import Consumer
from app.ingest import Settings
from app.ingest import dead_letter_stream
from app.models import Event
from app.reports import find_rollup_differences
from conftest import SECRET
from conftest import TEST_REDIS_URL
from conftest import TEST_SECRET_KEY
from conftest import compact
from conftest import load_sample
from conftest import make_test_app
from conftest import post_sample
from conftest import signed_headers


@pytest.fixture
def stream() -> str:
    return f"test-{uuid.uuid4().hex[:12]}:ingest"


@pytest.fixture
def redis_client(stream):
    client = redis.Redis.from_url(TEST_REDIS_URL)
    yield client
    client.delete(stream, dead_letter_stream(stream))
    client.close()


@pytest.fixture
def buffered_app(database_url, stream, redis_client):
    app = make_test_app(database_url, REDIS_URL=TEST_REDIS_URL, INGEST_STREAM=stream)
    yield app
    app.extensions["db"].engine.dispose()


def settings_for(stream: str, **changes) -> Settings:
    values = {
        "stream": stream,
        "batch_size": 100,
        "batch_wait_ms": 5,
        "claim_idle_ms": 60_000,
        "max_tries": 3,
    }
    return Settings(**(values | changes))


def make_consumer(app, stream: str, name: str = "c1", **changes) -> Consumer:
    engine = app.extensions["db"].engine
    return Consumer(
        app.extensions["redis"],
        so.sessionmaker(engine, expire_on_commit=False),
        settings_for(stream, **changes),
        name=name,
    )


def drain(consumer: Consumer, timeout: float = 10.0) -> None:
    """Run the consumer until the stream is empty, then stop it."""
    client = consumer.redis
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.exists(consumer.settings.stream) and not client.xlen(
            consumer.settings.stream
        ):
            break
        time.sleep(0.02)
    consumer.stop.set()
    thread.join(5)
    assert not thread.is_alive()


def stored(app) -> list[Event]:
    with so.Session(app.extensions["db"].engine) as session:
        return list(session.scalars(sa.select(Event).order_by(Event.id)))


def test_notification_is_buffered_not_stored_in_the_request(
    buffered_app, stream, redis_client
):
    client = buffered_app.test_client()
    response = post_sample(client, "channel.cheer.v1", message_id="m-buffered")
    assert response.status_code == 204
    assert stored(buffered_app) == []
    entries = redis_client.xrange(stream)
    assert len(entries) == 1
    assert entries[0][1][b"message_id"] == b"m-buffered"


def test_buffered_path_accepts_the_previous_secret_while_rotating(
    database_url, stream, redis_client
):
    """The fast path once read EVENTSUB_SECRET alone, refusing the old one."""
    app = make_test_app(
        database_url,
        REDIS_URL=TEST_REDIS_URL,
        INGEST_STREAM=stream,
        EVENTSUB_SECRET="the-new-secret-0123",
        EVENTSUB_SECRET_PREVIOUS=SECRET,
    )
    client = app.test_client()

    old = post_sample(client, "channel.cheer.v1", message_id="m-old")
    stranger = post_sample(client, "channel.cheer.v1", secret="not-ours-0123456")

    assert (old.status_code, stranger.status_code) == (204, 403)
    assert len(redis_client.xrange(stream)) == 1
    app.extensions["db"].engine.dispose()


def test_consumer_stores_counts_publishes_then_acknowledges(
    buffered_app, stream, redis_client
):
    client = buffered_app.test_client()
    pubsub = redis_client.pubsub()
    pubsub.subscribe(feed_channel("example_streamer"))
    pubsub.get_message(timeout=1)
    for index in range(3):
        post_sample(client, "channel.follow.v2", message_id=f"m-{index}")
    post_sample(client, "channel.cheer.v1", message_id="m-1")  # redelivery

    drain(make_consumer(buffered_app, stream))

    events = stored(buffered_app)
    assert [e.message_id for e in events] == ["m-0", "m-1", "m-2"]
    with buffered_app.app_context():
        from app.extensions import db

        assert find_rollup_differences(db.session).rows == []
    message = pubsub.get_message(timeout=2)
    frame = json.loads(message["data"])
    assert frame["kind"] == "events"
    assert [e["message_id"] for e in frame["events"]] == ["m-0", "m-1", "m-2"]
    assert [e["cursor"] for e in frame["events"]] == [str(e.id) for e in events]
    assert redis_client.xlen(stream) == 0
    assert redis_client.xpending(stream, GROUP)["pending"] == 0
    pubsub.close()


def test_frames_go_only_to_streamers_some_page_watches(
    buffered_app, stream, redis_client
):
    """A channel nobody subscribes to gets no frame built or published."""
    client = buffered_app.test_client()
    # Pub/sub channels span every Redis database: logins of this test alone.
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    watched, unwatched = prefix + "watched", prefix + "unwatched"
    # A pattern subscriber sees every PUBLISH but is not counted by NUMSUB,
    # so it shows what ingest publishes without making it publish.
    everything = redis_client.pubsub()
    everything.psubscribe(feed_channel(prefix + "*"))
    watcher = redis_client.pubsub()
    watcher.subscribe(feed_channel(watched))
    for pubsub in (everything, watcher):
        pubsub.get_message(timeout=1)
    for number, login in enumerate((unwatched, watched)):
        body = load_sample("channel.follow.v2")
        streamer_id = f"90000{number}"
        body["event"]["broadcaster_user_login"] = login
        body["event"]["broadcaster_user_id"] = streamer_id
        body["subscription"]["condition"]["broadcaster_user_id"] = streamer_id
        raw = compact(body)
        headers = signed_headers(raw, message_id=login)
        response = client.post("/webhooks/eventsub", data=raw, headers=headers)
        assert response.status_code == 204

    drain(make_consumer(buffered_app, stream))

    assert sorted(e.message_id for e in stored(buffered_app)) == [unwatched, watched]
    published = []
    while message := everything.get_message(timeout=0.5):
        published.append(message["channel"].decode())
    assert published == [feed_channel(watched)]
    frame = json.loads(watcher.get_message(timeout=2)["data"])
    assert [e["message_id"] for e in frame["events"]] == [watched]
    everything.close()
    watcher.close()


@pytest.mark.parametrize(
    "shape", ["pretty", "duplicate key", "nul", "escaped pair", "batch", "exponent"]
)
def test_the_stored_payload_is_the_body_whichever_way_it_was_written(
    buffered_app, stream, redis_client, shape
):
    """A single-event body is stored as the text Twitch sent when nothing in
    it had to be replaced; either way the payload reads back as parsed."""
    body = load_sample("channel.cheer.v1")
    raw = json.dumps(body, indent=2, ensure_ascii=False).encode()
    expected = {"subscription": body["subscription"], "event": body["event"]}
    if shape == "duplicate key":
        # Parsers keep the last of a repeated key; so does reading it back.
        raw = raw[:-1] + b', "event": ' + json.dumps(body["event"]).encode() + b"}"
        raw = raw.replace(b'"bits": 100', b'"bits": 7', 1)
        assert b'"bits": 7' in raw
    elif shape == "nul":
        raw = raw.replace(b'"message": "', b'"message": "\\u0000', 1)
        expected["event"]["message"] = "\ufffd" + body["event"]["message"]
    elif shape == "escaped pair":
        raw = raw.replace(b'"message": "', b'"message": "\\ud83d\\ude00', 1)
        expected["event"]["message"] = "\U0001f600" + body["event"]["message"]
    elif shape == "exponent":
        # A float reads it as 0.0; Postgres cannot read the text as a number.
        raw = raw.replace(b'"bits": 100', b'"bits": 100, "tiny": 1e-99999', 1)
        assert b"1e-99999" in raw
        expected["event"]["tiny"] = 0.0
    elif shape == "batch":
        batched = {"subscription": body["subscription"], "events": []}
        batched["events"].append({"id": "b-0", "data": body["event"]})
        raw = json.dumps(batched).encode()
    headers = signed_headers(raw, message_id="shaped")
    response = buffered_app.test_client().post(
        "/webhooks/eventsub", data=raw, headers=headers
    )
    assert response.status_code == 204, response.text

    drain(make_consumer(buffered_app, stream))

    (event,) = stored(buffered_app)
    assert event.payload == expected
    engine = buffered_app.extensions["db"].engine
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            text = connection.scalar(sa.text("SELECT payload::text FROM events"))
            # As JSONB too (what revision 0006's downgrade does).
            assert connection.scalar(sa.text("SELECT payload::jsonb FROM events"))
        as_sent = shape in ("pretty", "duplicate key", "escaped pair")
        assert (text == raw.decode()) is as_sent


def test_raw_surrogate_bytes_are_stored_replaced_and_stop_nothing(
    buffered_app, stream, redis_client
):
    """Such a body once passed the webhook and then crashed every consumer."""
    client = buffered_app.test_client()
    body = load_sample("channel.cheer.v1")
    body["event"]["message"] = "LONE"
    raw = compact(body).replace(b"LONE", b"a\xed\xa0\x80b")
    headers = signed_headers(raw, message_id="raw-surrogate")
    response = client.post("/webhooks/eventsub", data=raw, headers=headers)
    assert response.status_code == 204, response.text
    post_sample(client, "channel.follow.v2", message_id="after-it")

    drain(make_consumer(buffered_app, stream))

    events = {e.message_id: e for e in stored(buffered_app)}
    assert events.keys() == {"raw-surrogate", "after-it"}
    assert events["raw-surrogate"].payload["event"]["message"] == "a\ufffdb"
    assert redis_client.xlen(dead_letter_stream(stream)) == 0


def test_two_copies_of_a_message_in_one_batch_store_the_first_whole(
    buffered_app, stream, redis_client
):
    """Columns and payload must come from the same copy, the one kept."""
    from datetime import UTC
    from datetime import datetime

    from app.ingest import buffer_notification

    now = datetime.now(UTC)
    timestamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for bits in (1, 7):
        body = load_sample("channel.cheer.v1")
        body["event"]["bits"] = bits
        buffer_notification(
            redis_client, stream, "twice", timestamp, compact(body), now
        )

    drain(make_consumer(buffered_app, stream))

    (event,) = stored(buffered_app)
    assert event.amount == 1
    assert event.payload["event"]["bits"] == 1


def test_redis_unreachable_answers_503_and_stores_nothing(database_url, caplog):
    app = make_test_app(database_url, REDIS_URL="redis://127.0.0.1:1/0")
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="webhooks.views"):
        response = post_sample(client, "channel.follow.v2", message_id="m-503")
    assert response.status_code == 503
    assert "Redis unavailable" in caplog.text
    assert "m-503" in caplog.text
    assert stored(app) == []

    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["down"] == ["redis"]
    assert client.get("/healthz").status_code == 200
    app.extensions["db"].engine.dispose()


def test_unreadable_entry_goes_to_dead_letters_and_can_be_replayed(
    buffered_app, stream, redis_client
):
    post_sample(buffered_app.test_client(), "channel.follow.v2", message_id="good")
    redis_client.xadd(
        stream,
        {
            "message_id": "bad",
            "timestamp": "2026-12-04T00:00:00Z",
            "received_at": "2026-12-04T00:00:00+00:00",
            "body": b"{not json",
        },
    )
    drain(make_consumer(buffered_app, stream))
    assert [e.message_id for e in stored(buffered_app)] == ["good"]
    dead = redis_client.xrange(dead_letter_stream(stream))
    assert len(dead) == 1
    assert dead[0][1][b"message_id"] == b"bad"
    assert b"not valid JSON" in dead[0][1][b"reason"]

    runner = buffered_app.test_cli_runner()
    from app.ingest_commands import dead_letters

    listing = runner.invoke(dead_letters, [], env=env_for(buffered_app, stream))
    assert listing.exit_code == 0, listing.output
    assert "bad" in listing.output and "not valid JSON" in listing.output

    for wrong in ("nope", "99999999999999999999999-0", "1-" + "9" * 5000):
        bad_option = runner.invoke(
            dead_letters, ["--replay", wrong], env=env_for(buffered_app, stream)
        )
        assert bad_option.exit_code == 2, bad_option.output
        assert "stream entry id" in bad_option.output

    dead_id = dead[0][0].decode()
    replay = runner.invoke(
        dead_letters, ["--replay", dead_id], env=env_for(buffered_app, stream)
    )
    assert replay.exit_code == 0, replay.output
    assert redis_client.xlen(dead_letter_stream(stream)) == 0
    assert redis_client.xrange(stream)[0][1][b"message_id"] == b"bad"


def env_for(app, stream: str) -> dict[str, str]:
    url = app.config["DATABASE_URL"]
    return {
        "DATABASE_URL": url,
        "REDIS_URL": TEST_REDIS_URL,
        "INGEST_STREAM": stream,
        "EVENTSUB_SECRET": app.config["EVENTSUB_SECRET"],
        "SECRET_KEY": TEST_SECRET_KEY,
        "TWITCH_CLIENT_ID": "test-client-id",
        "TWITCH_CLIENT_SECRET": "test-client-secret",
        "SIMULATOR": "0",
    }


@pytest.mark.postgres
def test_a_row_the_database_rejects_is_dead_lettered_alone(
    postgres_url, stream, redis_client
):
    app = make_test_app(postgres_url, REDIS_URL=TEST_REDIS_URL, INGEST_STREAM=stream)
    client = app.test_client()
    post_sample(client, "channel.follow.v2", message_id="before")
    fields = redis_client.xrange(stream)[0][1]
    # Longer than the column allows: Postgres refuses it, SQLite would not.
    redis_client.xadd(stream, dict(fields, message_id="x" * 150))
    post_sample(client, "channel.follow.v2", message_id="after")

    drain(make_consumer(app, stream))

    assert [e.message_id for e in stored(app)] == ["before", "after"]
    dead = redis_client.xrange(dead_letter_stream(stream))
    assert [d[1][b"message_id"] for d in dead] == [b"x" * 150]
    assert b"not stored after 3 tries" in dead[0][1][b"reason"]
    app.extensions["db"].engine.dispose()


@pytest.mark.postgres
def test_a_read_only_database_is_waited_out_not_dead_lettered(
    postgres_url, stream, redis_client
):
    """As during a failover, when the consumer reaches a standby."""
    app = make_test_app(postgres_url, REDIS_URL=TEST_REDIS_URL, INGEST_STREAM=stream)
    client = app.test_client()
    for index in range(3):
        post_sample(client, "channel.follow.v2", message_id=f"ro-{index}")
    read_only = sa.create_engine(
        postgres_url,
        connect_args={"options": "-c default_transaction_read_only=on"},
    )
    consumer = Consumer(
        app.extensions["redis"],
        so.sessionmaker(read_only, expire_on_commit=False),
        settings_for(stream),
        name="on-standby",
    )
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not redis_client.xpending(stream, GROUP)["pending"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)  # several tries' worth: 3 tries of a row take 0.3 s
    consumer.stop.set()
    thread.join(5)
    read_only.dispose()

    assert stored(app) == []
    assert redis_client.xlen(dead_letter_stream(stream)) == 0
    assert redis_client.xpending(stream, GROUP)["pending"] == 3
    time.sleep(0.2)
    drain(make_consumer(app, stream, name="on-primary", claim_idle_ms=100))
    assert [e.message_id for e in stored(app)] == [f"ro-{i}" for i in range(3)]
    app.extensions["db"].engine.dispose()


def test_entries_of_a_stopped_consumer_are_claimed_by_another(
    buffered_app, stream, redis_client
):
    client = buffered_app.test_client()
    for index in range(5):
        post_sample(client, "channel.follow.v2", message_id=f"c-{index}")
    # A consumer reads them and stops before acknowledging anything.
    redis_client.xgroup_create(stream, GROUP, id="0")
    redis_client.xreadgroup(GROUP, "gone", {stream: ">"}, count=10)
    assert redis_client.xpending(stream, GROUP)["pending"] == 5

    time.sleep(0.2)
    drain(make_consumer(buffered_app, stream, name="heir", claim_idle_ms=100))

    assert [e.message_id for e in stored(buffered_app)] == [f"c-{i}" for i in range(5)]
    assert redis_client.xpending(stream, GROUP)["pending"] == 0


def test_metrics_and_readiness_with_redis(buffered_app, stream):
    client = buffered_app.test_client()
    post_sample(client, "channel.follow.v2")
    post_sample(client, "channel.follow.v2", secret="wrong-secret-0123456789")
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"database": "ok", "redis": "ok"}
    text = client.get("/metrics").get_data(as_text=True)
    assert 'streamfeed_webhooks_total{outcome="accepted"}' in text
    assert 'streamfeed_webhooks_total{outcome="bad_signature"}' in text
    assert "streamfeed_stream_backlog 1.0" in text
    assert "streamfeed_redis_up 1.0" in text


def test_a_message_id_with_a_colon_is_not_its_own_duplicate(
    buffered_app, stream, redis_client
):
    """Batch items are stored as "<id>:<position>"; a plain id may hold ":"."""
    from app.deliveries import read_record

    client = buffered_app.test_client()
    once, twice = f"colon:{uuid.uuid4().hex}", f"colon:{uuid.uuid4().hex}"
    for message_id in (once, twice, twice):
        post_sample(client, "channel.cheer.v1", message_id)
    drain(make_consumer(buffered_app, stream))

    assert sorted(e.message_id for e in stored(buffered_app)) == sorted([once, twice])
    assert "duplicates" not in read_record(redis_client, once)
    assert read_record(redis_client, twice)["duplicates"] == "1"


def test_explain_tells_what_became_of_a_delivery(buffered_app, stream, redis_client):
    from app.explain import explain
    from app.feedbus import pushed_key

    client = buffered_app.test_client()
    message_id = f"explain-{uuid.uuid4()}"
    post_sample(client, "channel.cheer.v1", message_id, secret="wrong-secret-0123")
    post_sample(client, "channel.cheer.v1", message_id)
    post_sample(client, "channel.cheer.v1", message_id)  # a redelivery
    drain(make_consumer(buffered_app, stream))
    # What a web process does after pushing the event to three pages.
    redis_client.incrby(pushed_key(message_id), 3)

    runner = buffered_app.test_cli_runner()
    env = env_for(buffered_app, stream)
    result = runner.invoke(explain, [message_id], env=env)
    assert result.exit_code == 0, result.output
    cursor = stored(buffered_app)[0].id
    assert f"as cursor {cursor}: channel.cheer for example_streamer" in result.output
    assert "duplicate: 1 delivery found already stored and skipped" in result.output
    assert "refused: 1 delivery from" in result.output
    assert "the last as bad signature (403: signature does not match)" in (
        result.output
    )
    assert "pushed to 3 clients" in result.output

    buffered_id = f"buffered-{uuid.uuid4()}"
    post_sample(client, "channel.follow.v2", buffered_id)
    waiting = runner.invoke(explain, [buffered_id], env=env)
    assert "not stored yet: still buffered for ingest" in waiting.output

    unknown = runner.invoke(explain, ["never-seen"], env=env)
    assert unknown.exit_code == 1
    assert "Nothing is known of message never-seen" in unknown.output
    assert runner.invoke(explain, [" "], env=env).exit_code == 2
    redis_client.delete(pushed_key(message_id))


def test_unsigned_refusals_cannot_fill_redis(buffered_app, redis_client):
    """Anyone may send those, with a new message id each time."""
    from app.deliveries import UNSIGNED_KEPT
    from app.deliveries import UNSIGNED_REFUSALS
    from app.deliveries import read_record
    from app.deliveries import record_key
    from app.deliveries import record_refusal
    from webhooks.messages import Refused

    client = buffered_app.test_client()
    prefix = f"flood-{uuid.uuid4().hex[:8]}"
    for index in range(20):
        post_sample(client, "channel.cheer.v1", f"{prefix}-{index}", secret="not-it")
    stale_id = f"{prefix}-stale"
    old = format_timestamp(datetime.now(UTC) - timedelta(minutes=11))
    stale = post_sample(client, "channel.cheer.v1", stale_id, timestamp=old)
    assert stale.status_code == 400
    assert not any(redis_client.exists(record_key(f"{prefix}-{i}")) for i in range(20))
    # An id too long to be one is not noted under the part that would fit.
    long_id = (prefix + "y" * 101)[:101]
    post_sample(client, "channel.cheer.v1", long_id, secret="not-it")
    assert read_record(redis_client, long_id[:100]) == {}
    assert read_record(redis_client, f"{prefix}-7")["refusal"] == "bad_signature"
    # A signed refusal keeps its own record.
    assert redis_client.hget(record_key(stale_id), "refusal") == b"stale"

    unsigned = Refused(403, "signature does not match", "bad_signature")
    now = datetime.now(UTC)
    for index in range(UNSIGNED_KEPT + 500):
        record_refusal(redis_client, f"{prefix}-many-{index}", now, unsigned)
    # Trimmed whole nodes at a time: about the newest UNSIGNED_KEPT stay.
    assert UNSIGNED_KEPT <= redis_client.xlen(UNSIGNED_REFUSALS) < UNSIGNED_KEPT + 200


def test_buffered_path_refuses_as_the_view_does(database_url, stream, redis_client):
    app = make_test_app(
        database_url,
        REDIS_URL=TEST_REDIS_URL,
        INGEST_STREAM=stream,
        WEBHOOK_MAX_BYTES=2000,
    )
    client = app.test_client()
    body = compact(load_sample("channel.follow.v2"))

    def post(data: bytes, **changes):
        headers = signed_headers(data) | changes
        return client.post("/webhooks/eventsub", data=data, headers=headers)

    assert (
        post(body, **{"Twitch-Eventsub-Message-Signature": "sha256=00"}).status_code
        == 403
    )
    stale = signed_headers(body, timestamp="2020-01-01T00:00:00Z")
    assert (
        client.post("/webhooks/eventsub", data=body, headers=stale).status_code == 400
    )
    assert post(b"{not json").status_code == 400
    assert post(body, **{"Twitch-Eventsub-Message-Retry": ""}).status_code == 400
    huge = post(body + b" " * 3000)
    assert huge.status_code == 413
    assert huge.get_data(as_text=True) == "body is larger than 2000 bytes\n"
    challenge = post_sample(client, "webhook_callback_verification")
    assert challenge.status_code == 200
    assert redis_client.xlen(stream) == 0
    assert post(body).status_code == 204
    assert redis_client.xlen(stream) == 1
    app.extensions["db"].engine.dispose()


@pytest.mark.postgres
def test_metrics_add_up_the_processes_of_a_host(
    postgres_url, stream, redis_client, tmp_path
):
    """With PROMETHEUS_MULTIPROC_DIR, /metrics counts every process's webhooks.

    prometheus_client picks its storage when imported, so each "worker" is
    a process of its own here, as under gunicorn.
    """
    import subprocess
    import sys
    from pathlib import Path

    script = """
import sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from conftest import make_test_app, post_sample
app = make_test_app(sys.argv[2], REDIS_URL=sys.argv[3], INGEST_STREAM=sys.argv[4])
client = app.test_client()
assert post_sample(client, "channel.follow.v2").status_code == 204
if sys.argv[5] == "scrape":
    sys.stdout.write(client.get("/metrics").get_data(as_text=True))
"""
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    for role in ("post", "post", "scrape"):
        done = subprocess.run(
            [sys.executable, "-c", script, root, postgres_url, TEST_REDIS_URL]
            + [stream, role],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    assert 'streamfeed_webhooks_total{outcome="accepted"} 3.0' in done.stdout
    assert "streamfeed_stream_backlog 3.0" in done.stdout


def test_two_consumers_at_once_store_each_message_once(
    buffered_app, stream, redis_client
):
    from datetime import UTC
    from datetime import datetime

    from app.ingest import buffer_notification
    from app.ingest import ensure_group

    body = compact(load_sample("channel.follow.v2"))
    ids = [f"two-{uuid.uuid4()}" for _ in range(600)]
    now = datetime.now(UTC)
    for message_id in ids + ids[::7]:  # some delivered twice
        buffer_notification(
            redis_client, stream, message_id, "2026-12-04T00:00:00Z", body, now
        )
    ensure_group(redis_client, stream)

    consumers = [
        make_consumer(buffered_app, stream, name=f"c{i}", batch_size=50)
        for i in range(2)
    ]
    threads = [threading.Thread(target=c.run) for c in consumers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while redis_client.xlen(stream) and time.monotonic() < deadline:
        time.sleep(0.02)
    for consumer in consumers:
        consumer.stop.set()
    for thread in threads:
        thread.join(10)

    events = stored(buffered_app)
    assert sorted(e.message_id for e in events) == sorted(ids)
    with buffered_app.app_context():
        from app.extensions import db

        assert find_rollup_differences(db.session).rows == []
