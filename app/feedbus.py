"""Redis names shared by ingest (which publishes) and the web processes.

After a batch of events commits, ``cli.py ingest`` publishes, for each
streamer with new rows, one message on ``feed_channel(login)``: the JSON
text ``{"kind": "events", "events": [...]}`` with the new rows oldest first
(ascending cursor), exactly the frame a websocket page receives. The web
processes relay it to their pages and count, under ``pushed_key``, how many
clients each message id reached; ``cli.py explain`` reads that count.

A web process subscribes to a streamer's channel only while one of its
pages shows that streamer, and reads the database by cursor only once the
subscription is confirmed. So ingest asks Redis which of a batch's
channels have subscribers (``watched_channels``, after the commit) and
builds and publishes frames for those alone: a page that subscribes after
the question reads the committed rows from the database instead.
"""

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import orjson
import redis

from app.store import event_to_json

CHANNEL_PREFIX = "streamfeed:feed:"
# INCRBY by the number of clients a web process delivered the event to.
PUSHED_PREFIX = "streamfeed:pushed:"
PUSHED_SECONDS = 7 * 24 * 3600


def feed_channel(login: str) -> str:
    """The Redis pub/sub channel carrying new events of one streamer."""
    return CHANNEL_PREFIX + login


def pushed_key(message_id: str) -> str:
    """The Redis counter of clients an event was pushed to."""
    return PUSHED_PREFIX + message_id


def watched_channels(client: redis.Redis, events: Iterable[Any]) -> set[str]:
    """The feed channels of these events' streamers that someone listens to.

    One PUBSUB NUMSUB for all of them. Ask it only after the events are
    committed (see the module's note).
    """
    logins = {e.streamer_name for e in events}
    logins.discard(None)
    logins.discard("")
    channels = [feed_channel(login) for login in logins]
    if not channels:
        return set()
    counts = client.pubsub_numsub(*channels)
    return {as_text(channel) for channel, count in counts if count}


def as_text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def feed_frames(
    events: Iterable[Any], channels: set[str] | None = None
) -> dict[str, bytes]:
    """Group stored events by streamer into the frames to publish.

    Returns ``{channel: frame}``, each frame the UTF-8 bytes of its JSON
    text; events without a streamer login have no feed and are left out, as
    are, when ``channels`` is given, streamers whose channel is not in it.
    Each frame lists its events by cursor.
    """
    by_login: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        if event.streamer_name:
            by_login[event.streamer_name].append(event)
    frames = {}
    for login, group in by_login.items():
        channel = feed_channel(login)
        if channels is not None and channel not in channels:
            continue
        group.sort(key=lambda e: e.id)
        frame = {"kind": "events", "events": [event_to_json(e) for e in group]}
        frames[channel] = dump_frame(frame)
    return frames


def dump_frame(frame: dict[str, Any]) -> bytes:
    """Encode a frame with orjson; integers past 64 bits fall back to json."""
    try:
        return orjson.dumps(frame)
    except orjson.JSONEncodeError:
        return json.dumps(frame).encode()
