"""The web process's stream appender, against the real Redis of TEST_REDIS_URL."""

import threading
import uuid

import pytest
import redis

from app.cache import make_redis
from conftest import TEST_REDIS_URL
from webhooks.appender import StreamAppender


@pytest.fixture
def client():
    client = make_redis(TEST_REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def stream(client):
    name = f"test-{uuid.uuid4().hex[:12]}:ingest"
    yield name
    client.delete(name)


def append_from_threads(appender: StreamAppender, count: int) -> dict[int, object]:
    """Append ``count`` entries from as many threads at once; what each got."""
    outcomes: dict[int, object] = {}
    start = threading.Barrier(count)

    def send(number: int) -> None:
        start.wait()
        try:
            appender.append({"message_id": f"m-{number}", "body": b"{}"})
            outcomes[number] = "added"
        except redis.RedisError as e:
            outcomes[number] = e

    threads = [threading.Thread(target=send, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


def test_concurrent_appends_each_add_their_own_entry_once(client, stream):
    appender = StreamAppender(client, stream)
    outcomes = append_from_threads(appender, 200)
    assert set(outcomes.values()) == {"added"}
    ids = [fields[b"message_id"] for _, fields in client.xrange(stream)]
    assert sorted(ids) == sorted(f"m-{n}".encode() for n in range(200))


def test_a_refused_append_raises_for_every_waiting_request(client, stream):
    client.set(stream, "not a stream")  # every XADD now fails: WRONGTYPE
    appender = StreamAppender(client, stream)
    outcomes = append_from_threads(appender, 20)
    assert len(outcomes) == 20
    assert all(isinstance(e, redis.ResponseError) for e in outcomes.values())
    assert client.type(stream) == b"string"


def test_unreachable_redis_raises_and_the_next_append_works_again(client, stream):
    down = StreamAppender(make_redis("redis://127.0.0.1:1/0"), stream)
    with pytest.raises(redis.ConnectionError):
        down.append({"message_id": "lost", "body": b"{}"})
    # The sender survives a failed round trip and serves the next requests.
    down.client = client
    down.append({"message_id": "kept", "body": b"{}"})
    assert [f[b"message_id"] for _, f in client.xrange(stream)] == [b"kept"]
