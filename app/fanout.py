"""Fan-out: a streamer's new events, relayed to the open feeds of this process.

Each web process holds one relay. A websocket (``app/live.py``) opens a
``Feed`` on it for one streamer: a bounded queue that the relay fills and the
websocket drains. The relay never waits for a websocket, so a slow page can
only fall behind itself; when its queue overflows, the queue is replaced by
a single ``RESYNC``, and the page is told to reconnect from its last cursor.

Two relays share that interface:

- ``RedisRelay`` (``REDIS_URL`` set): one Redis pub/sub connection per
  process, subscribed to ``streamfeed:feed:<login>`` for each streamer with
  an open feed here and unsubscribed when the last one closes. Ingest
  publishes ``{"kind": "events", "events": [...]}`` there once a batch is
  committed. The relay parses a message once, hands the same ``Frame`` (and
  its JSON text, sent as published) to every feed, and adds the number of
  feeds it reached to ``streamfeed:pushed:<message_id>`` (kept 7 days, read
  by ``cli.py explain``), one pipelined round trip per message.
- ``LocalRelay`` (embedded mode): everything runs in one process, so the
  webhook's ``announce`` puts a ``CATCH_UP`` in the feeds of the streamers
  it stored events for, and each feed reads what is new from the database.
  Feeds also re-read every second, which covers events stored by another
  process (two workers on one SQLite file).

``open`` returns only once the subscription is confirmed, so a websocket
that then reads the database by cursor and forwards only events it has not
sent misses nothing and repeats nothing. When the Redis connection drops,
redis-py reconnects and subscribes again; every feed of a channel that is
confirmed again gets a ``CATCH_UP`` for what was published meanwhile.
"""

import collections
import json
import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import redis
from flask import Flask
from flask import current_app
from prometheus_client import Gauge
from wsproto.frame_protocol import FrameProtocol

from app.feedbus import CHANNEL_PREFIX
from app.feedbus import PUSHED_SECONDS
from app.feedbus import feed_channel
from app.feedbus import pushed_key

logger = logging.getLogger(__name__)

# How long a websocket waits for Redis to confirm its subscription.
SUBSCRIBE_SECONDS = 5.0
# Embedded mode re-reads this often for events stored by another process.
POLL_SECONDS = 1.0
# A page told to resync that has not even taken the message after this many
# seconds has stopped reading: its socket is shut so its websocket ends.
ABANDON_SECONDS = 30.0

WEBSOCKET_CLIENTS = Gauge(
    "streamfeed_websocket_clients",
    "Live feed websockets open in this web process.",
    multiprocess_mode="livesum",
)

# Queue items besides frames.
RESYNC = "resync"  # the feed fell behind: the page must reconnect
CATCH_UP = "catch-up"  # read the database from the last cursor sent


def wire_frame(text: str) -> bytes:
    """A whole server-to-page websocket text frame (unmasked, uncompressed)."""
    return bytes(FrameProtocol(client=False, extensions=[]).send_data(text, fin=True))


class RelayUnavailable(RuntimeError):
    """The relay cannot follow a streamer now (Redis down or too slow)."""


@dataclass(frozen=True)
class Frame:
    """One published message: its text as received, and its events parsed.

    ``wire`` is the whole websocket frame (unmasked, uncompressed text),
    built once here and written as is to every page that needs all of it.
    """

    text: str
    events: list[dict[str, Any]]
    cursors: list[int]
    wire: bytes
    first: int  # the smallest cursor, or 0 for a frame without events

    @classmethod
    def parse(cls, text: str) -> "Frame":
        """Read a published message, or raise ``ValueError`` saying why."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("kind") != "events":
            raise ValueError("not an events frame")
        events = data.get("events")
        if not isinstance(events, list):
            raise ValueError("events is not a list")
        cursors = [int(event["cursor"]) for event in events]
        return cls(text, events, cursors, wire_frame(text), min(cursors, default=0))

    def message_ids(self) -> list[str]:
        return [str(e.get("message_id")) for e in self.events if e.get("message_id")]


@dataclass(eq=False)
class Feed:
    """One websocket's place in the relay: a bounded queue, never blocking.

    The one consumer, the websocket, sleeps on ``ready``: an event costs
    about half a condition variable to wake under gevent. While it sleeps
    with nothing queued (``parked``), ``write_now`` (set by the websocket
    on gevent) may write a frame straight to the page's socket without
    ever blocking, which saves waking it at all.
    """

    streamer: str
    limit: int
    items: collections.deque = field(default_factory=collections.deque)
    ready: threading.Event = field(default_factory=threading.Event)
    overflowed: bool = False
    overflowed_at: float = 0.0
    # Set by the websocket: ends it when the page stopped reading.
    abandon: Callable[[], None] | None = None
    write_now: Callable[["Frame"], bool] | None = None
    parked: bool = False

    def offer(self, item: Any) -> bool:
        """Queue a frame or signal; False when the feed is too far behind.

        Lock-free: the relay's listener is the only producer of frames, and
        deque appends and pops are atomic. Two ``announce`` calls racing
        can at worst queue a second CATCH_UP or RESYNC, which is harmless.
        """
        if self.overflowed:
            return False
        if item is CATCH_UP and CATCH_UP in self.items:
            return True
        if (
            self.parked
            and not self.items
            and self.write_now is not None
            and isinstance(item, Frame)
            and self.write_now(item)
        ):
            return True
        if len(self.items) >= self.limit:
            self.overflowed = True
            self.overflowed_at = time.monotonic()
            # The end of a half-written frame (bytes) must still be written.
            head = self.items[0] if self.items else None
            self.items.clear()
            if isinstance(head, bytes):
                self.items.append(head)
            self.items.append(RESYNC)
            self.ready.set()
            return False
        self.items.append(item)
        self.ready.set()
        return True

    def take(self, timeout: float) -> list[Any]:
        """Everything queued, oldest first; empty after ``timeout`` or a ``wake``."""
        if not self.items:
            self.parked = True
            try:
                self.ready.wait(timeout)
            finally:
                self.parked = False
        self.ready.clear()
        taken = []
        while self.items:
            try:
                taken.append(self.items.popleft())
            except IndexError:
                break
        return taken

    def wake(self) -> None:
        """Return from ``take`` now, e.g. because the page went away."""
        self.ready.set()

    def stuck(self, now: float) -> bool:
        """Told to resync long ago, and the message is still queued."""
        return (
            self.overflowed
            and now - self.overflowed_at > ABANDON_SECONDS
            and RESYNC in self.items
        )


class LocalRelay:
    """Feeds of one process, nudged by ``announce`` (embedded mode)."""

    # Without Redis, a feed re-reads the database this often.
    poll_seconds: float | None = POLL_SECONDS

    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self._feeds: dict[str, set[Feed]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def open(self, streamer: str) -> Iterator[Feed]:
        """Follow a streamer for as long as the block runs."""
        feed = Feed(streamer, self.queue_size)
        self._add(feed)
        WEBSOCKET_CLIENTS.inc()
        try:
            yield feed
        finally:
            WEBSOCKET_CLIENTS.dec()
            self._remove(feed)

    def _add(self, feed: Feed) -> None:
        with self._lock:
            self._feeds.setdefault(feed.streamer, set()).add(feed)

    def _remove(self, feed: Feed) -> bool:
        """Forget a feed; True when it was the streamer's last one here."""
        with self._lock:
            feeds = self._feeds.get(feed.streamer, set())
            feeds.discard(feed)
            if feeds:
                return False
            self._feeds.pop(feed.streamer, None)
            return True

    def feeds_of(self, streamer: str) -> list[Feed]:
        with self._lock:
            return list(self._feeds.get(streamer, ()))

    def announce(self, streamer_names: set[str]) -> None:
        """Events of these streamers were stored here: read the database."""
        for name in streamer_names:
            for feed in self.feeds_of(name):
                feed.offer(CATCH_UP)

    def stop(self) -> None:
        """Nothing runs in the background without Redis."""

    def abandon_stuck(self) -> None:
        """End the websockets of pages that stopped reading altogether."""
        now = time.monotonic()
        with self._lock:
            feeds = [f for group in self._feeds.values() for f in group]
        for feed in feeds:
            if feed.stuck(now) and feed.abandon is not None:
                logger.warning("Feed %s: page stopped reading, closing", feed.streamer)
                abandon, feed.abandon = feed.abandon, None
                try:
                    abandon()
                except OSError:
                    pass


@dataclass
class Channel:
    """A streamer's subscription, ready once Redis has confirmed it."""

    ready: threading.Event = field(default_factory=threading.Event)


class RedisRelay(LocalRelay):
    """Feeds of one process, filled from Redis pub/sub (production mode)."""

    # Frames arrive by pub/sub; only a reconnect asks for a database read.
    poll_seconds = None

    def __init__(self, url: str, queue_size: int) -> None:
        super().__init__(queue_size)
        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self._pubsub = self.redis.pubsub()
        self._channels: dict[str, Channel] = {}
        self._subscribe_lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._stopped = threading.Event()

    @contextmanager
    def open(self, streamer: str) -> Iterator[Feed]:
        feed = Feed(streamer, self.queue_size)
        try:
            channel = self._add_feed(feed)
            if not channel.ready.wait(SUBSCRIBE_SECONDS):
                raise RelayUnavailable(f"Redis did not confirm {streamer}'s channel")
        except RelayUnavailable:
            self._remove_feed(feed)
            raise
        except (redis.RedisError, OSError) as e:
            self._remove_feed(feed)
            raise RelayUnavailable(f"Redis cannot be reached ({e})") from e
        WEBSOCKET_CLIENTS.inc()
        try:
            yield feed
        finally:
            WEBSOCKET_CLIENTS.dec()
            self._remove_feed(feed)

    # A streamer's first feed subscribes and its last one unsubscribes.
    # ``_subscribe_lock`` holds from that change of feeds until the command is
    # sent, so the commands reach Redis in the order the feeds changed: an
    # unsubscribe can never follow the subscribe of a page that opened
    # after it, and leave that page deaf.

    def _add_feed(self, feed: Feed) -> Channel:
        with self._subscribe_lock:
            with self._lock:
                feeds = self._feeds.setdefault(feed.streamer, set())
                first = not feeds
                feeds.add(feed)
                if first:
                    self._channels[feed.streamer] = Channel()
                channel = self._channels[feed.streamer]
            if first:
                self._start()
                self._pubsub.subscribe(feed_channel(feed.streamer))
            return channel

    def _remove_feed(self, feed: Feed) -> None:
        with self._subscribe_lock:
            with self._lock:
                feeds = self._feeds.get(feed.streamer, set())
                feeds.discard(feed)
                if feeds:
                    return
                self._feeds.pop(feed.streamer, None)
                self._channels.pop(feed.streamer, None)
            try:
                self._pubsub.unsubscribe(feed_channel(feed.streamer))
            except (redis.RedisError, OSError) as e:
                # The connection is gone; redis-py resubscribes what remains.
                logger.warning("Relay: could not unsubscribe %s (%s)", feed.streamer, e)

    def _start(self) -> None:
        with self._lock:
            if self._listener is None or not self._listener.is_alive():
                self._listener = threading.Thread(
                    target=self._listen, name="streamfeed-relay", daemon=True
                )
                self._listener.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        self._pubsub.close()
        self.redis.close()

    def _listen(self) -> None:
        checked = time.monotonic()
        while not self._stopped.is_set():
            if time.monotonic() - checked > 1.0:
                self.abandon_stuck()
                checked = time.monotonic()
            try:
                message = self._pubsub.get_message(timeout=1.0)
            except (redis.RedisError, OSError) as e:
                logger.warning("Relay: Redis connection lost (%s); retrying", e)
                time.sleep(1.0)
                continue
            except Exception:
                logger.exception("Relay: unexpected error; going on")
                time.sleep(1.0)
                continue
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        streamer = str(message.get("channel", "")).removeprefix(CHANNEL_PREFIX)
        if kind == "message":
            self._relay(streamer, message["data"])
        elif kind == "subscribe":
            self._confirmed(streamer)

    def _confirmed(self, streamer: str) -> None:
        with self._lock:
            channel = self._channels.get(streamer)
        if channel is None:
            return
        if channel.ready.is_set():
            # Subscribed again after a reconnect: what was published in
            # between never reached us, so the feeds read the database.
            logger.info("Relay: %s resubscribed; feeds catch up", streamer)
            for feed in self.feeds_of(streamer):
                feed.offer(CATCH_UP)
        channel.ready.set()

    def _relay(self, streamer: str, text: str) -> None:
        try:
            frame = Frame.parse(text)
        except (ValueError, KeyError, TypeError) as e:
            logger.warning("Relay: ignored a bad frame for %s (%s)", streamer, e)
            return
        reached = sum(feed.offer(frame) for feed in self.feeds_of(streamer))
        if reached:
            self._count_pushed(frame, reached)

    def _count_pushed(self, frame: Frame, clients: int) -> None:
        """Add ``clients`` to each message's pushed counter, in one round trip."""
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for message_id in frame.message_ids():
                    key = pushed_key(message_id)
                    pipe.incrby(key, clients)
                    pipe.expire(key, PUSHED_SECONDS)
                pipe.execute()
        except (redis.RedisError, OSError) as e:
            logger.warning("Relay: could not count pushed clients (%s)", e)


class Fanout:
    """Each app's relay, chosen by ``REDIS_URL`` and made on first use.

    The relay (and its Redis listener) starts in the process that serves
    websockets, never in a gunicorn master before it forks.
    """

    def init_app(self, app: Flask) -> None:
        app.extensions["fanout"] = LazyRelay(
            app.config.get("REDIS_URL"), app.config["FEED_QUEUE"]
        )

    @property
    def relay(self) -> LocalRelay:
        return current_app.extensions["fanout"].get()

    def announce(self, streamer_names: set[str]) -> None:
        """Tell this process's feeds that events of these streamers were stored."""
        if streamer_names:
            self.relay.announce(streamer_names)


class LazyRelay:
    def __init__(self, redis_url: str | None, queue_size: int) -> None:
        self.redis_url = redis_url
        self.queue_size = queue_size
        self._relay: LocalRelay | None = None
        self._lock = threading.Lock()

    def get(self) -> LocalRelay:
        with self._lock:
            if self._relay is None:
                self._relay = (
                    RedisRelay(self.redis_url, self.queue_size)
                    if self.redis_url
                    else LocalRelay(self.queue_size)
                )
            return self._relay
