"""The live feed websocket: one streamer's events as they are stored.

``/ws/streamers/<login>[?after=CURSOR]`` first sends the latest 50 events
(or, with ``after``, every event newer than that cursor), then each new one.
Frames are JSON: ``{"kind": "events", "events": [...]}`` oldest first, and
``{"kind": "ping"}`` when the feed has been quiet for a while.
"""

import json
import logging
import time

from flask import Blueprint
from flask import request
from simple_websocket import ConnectionClosed

from app.extensions import broker
from app.extensions import db
from app.extensions import sock
from app.logins import normalize_login
from app.store import event_to_json
from app.store import list_events
from app.store import list_events_after
from app.store import parse_cursor

logger = logging.getLogger(__name__)

bp = Blueprint("live", __name__)

RECENT = 50
BATCH = 200
# Events stored by another process ring no bell here; re-read this often.
POLL_SECONDS = 1.0
PING_SECONDS = 25.0
POLICY_VIOLATION = 1008


@sock.route("/ws/streamers/<login>", bp=bp)
def feed(ws, login: str) -> None:
    """Stream a streamer's events to one page until it goes away."""
    try:
        streamer_name = normalize_login(login)
        after = read_cursor(request.args.get("after"))
    except ValueError as e:
        ws.close(reason=POLICY_VIOLATION, message=str(e)[:120])
        return

    logger.debug("Feed %s: opened after cursor %s", streamer_name, after)
    try:
        relay(ws, streamer_name, after)
    except ConnectionClosed:
        logger.debug("Feed %s: closed by the page", streamer_name)


def read_cursor(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return parse_cursor(raw)
    except ValueError as e:
        raise ValueError(f"after {e}") from e


def relay(ws, streamer_name: str, after: int | None) -> None:
    bell = broker.bell(streamer_name)
    rings = bell.wait(-1, 0)
    if after is None:
        after = send_recent(ws, streamer_name)

    quiet_since = time.monotonic()
    while ws.connected:
        sent_up_to = send_newer(ws, streamer_name, after)
        if sent_up_to != after:
            after, quiet_since = sent_up_to, time.monotonic()
        elif time.monotonic() - quiet_since > PING_SECONDS:
            ws.send(json.dumps({"kind": "ping"}))
            quiet_since = time.monotonic()
        rings = bell.wait(rings, POLL_SECONDS)


def send_recent(ws, streamer_name: str) -> int:
    """Send the latest events, oldest first; return the newest cursor sent."""
    events = list_events(db.session, streamer_name, limit=RECENT)[::-1]
    end_read()
    send_events(ws, events)
    return events[-1].id if events else 0


def send_newer(ws, streamer_name: str, after: int) -> int:
    """Send every event newer than ``after``; return the newest cursor sent."""
    while True:
        events = list_events_after(db.session, streamer_name, after, BATCH)
        end_read()
        if not events:
            return after
        send_events(ws, events)
        after = events[-1].id


def end_read() -> None:
    """End the read transaction, so the next read sees newly committed rows.

    Closing keeps the loaded events usable (detached, not expired).
    """
    db.session.close()


def send_events(ws, events: list) -> None:
    frame = {"kind": "events", "events": [event_to_json(e) for e in events]}
    ws.send(json.dumps(frame))
