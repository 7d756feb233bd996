"""Redis names shared by ingest (which publishes) and the web processes.

After a batch of events commits, ``cli.py ingest`` publishes, for each
streamer with new rows, one message on ``feed_channel(login)``: the JSON
text ``{"kind": "events", "events": [...]}`` with the new rows oldest first
(ascending cursor), exactly the frame a websocket page receives. The web
processes relay it to their pages and count, under ``PUSHED_KEY``, how many
clients each message id reached; ``cli.py explain`` reads that count.
"""

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import orjson

from app.store import event_to_json

FEED_CHANNEL = "streamfeed:feed:{login}"
# INCRBY by the number of clients a web process delivered the event to.
PUSHED_KEY = "streamfeed:pushed:{message_id}"
PUSHED_TTL = timedelta(days=7)


def feed_channel(login: str) -> str:
    """The Redis pub/sub channel carrying new events of one streamer."""
    return FEED_CHANNEL.format(login=login)


def pushed_key(message_id: str) -> str:
    """The Redis counter of clients an event was pushed to."""
    return PUSHED_KEY.format(message_id=message_id)


def feed_frames(events: Iterable[Any]) -> dict[str, bytes]:
    """Group stored events by streamer into the frames to publish.

    Returns ``{channel: frame}``, each frame the UTF-8 bytes of its JSON
    text; events without a streamer login have no feed and are left out.
    Each frame lists its events by cursor.
    """
    by_login: dict[str, list[Any]] = defaultdict(list)
    for event in events:
        if event.streamer_name:
            by_login[event.streamer_name].append(event)
    frames = {}
    for login, group in by_login.items():
        group.sort(key=lambda e: e.id)
        frame = {"kind": "events", "events": [event_to_json(e) for e in group]}
        frames[feed_channel(login)] = dump_frame(frame)
    return frames


def dump_frame(frame: dict[str, Any]) -> bytes:
    """Encode a frame with orjson; integers past 64 bits fall back to json."""
    try:
        return orjson.dumps(frame)
    except orjson.JSONEncodeError:
        return json.dumps(frame).encode()
