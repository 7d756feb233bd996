"""The live feed websocket: one streamer's events as they are stored.

``/ws/streamers/<login>[?after=CURSOR]`` first sends the latest 50 events
(or, with ``after``, every event newer than that cursor), then each new one.
Frames are JSON: ``{"kind": "events", "events": [...]}`` oldest first,
``{"kind": "ping"}`` when the feed has been quiet for a while, and
``{"kind": "resync", "after": CURSOR}`` when this page fell too far behind:
the server then closes, and the page reconnects with ``?after=`` its own
last cursor.

No gap, no duplicate: the websocket follows the streamer on the process's
relay (``app/fanout.py``) first, then reads the database by cursor, then
forwards only relayed events it has not sent and that are newer than the
cursor the page came with. An event stored and published while the
database was being read is then either in the read or in a frame, and
whichever comes second is filtered out.
"""

import json
import logging
import socket
import threading
import time

from flask import Blueprint
from flask import request
from simple_websocket import ConnectionClosed

from app.extensions import broker
from app.extensions import db
from app.extensions import sock
from app.fanout import CATCH_UP
from app.fanout import RESYNC
from app.fanout import Frame
from app.fanout import RelayUnavailable
from app.fanout import wire_frame
from app.logins import normalize_login
from app.store import event_to_json
from app.store import list_events
from app.store import list_events_after
from app.store import parse_cursor

logger = logging.getLogger(__name__)

bp = Blueprint("live", __name__)

RECENT = 50
BATCH = 200
PING_SECONDS = 25.0
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
# Cursors remembered per websocket to drop duplicates; older ones are below
# the floor by then.
REMEMBERED = 4096


@bp.before_app_request
def prepare_websocket() -> None:
    """Adjust a feed's handshake before flask-sock takes the socket."""
    if not request.path.startswith("/ws/"):
        return
    # permessage-deflate would compress every frame once per client (and
    # hold a zlib window per connection), undoing the encode-once fan-out.
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    for key in ("gunicorn.socket", "werkzeug.socket"):
        if key in request.environ:
            request.environ[key] = WholeSends(request.environ[key])


class WholeSends:
    """A socket whose ``send`` writes everything, one writer at a time.

    simple-websocket writes each frame with a single ``send``; on gevent's
    non-blocking sockets a page that reads slowly gets part of a frame and
    the rest is dropped. Its reader also answers pings on the same socket.
    """

    def __init__(self, sock) -> None:
        self._sock = sock
        self.lock = threading.Lock()

    def send(self, data: bytes) -> int:
        with self.lock:
            self._sock.sendall(data)
        return len(data)

    sendall = send

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


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
        with broker.relay.open(streamer_name) as subscription:
            relay(ws, subscription, after)
    except RelayUnavailable as e:
        logger.warning("Feed %s: relay unavailable (%s)", streamer_name, e)
        ws.close(reason=TRY_AGAIN_LATER, message="live feed unavailable, retry")
    except ConnectionClosed:
        logger.debug("Feed %s: closed by the page", streamer_name)
    except OSError as e:
        logger.debug("Feed %s: connection lost (%s)", streamer_name, e)


def read_cursor(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return parse_cursor(raw)
    except ValueError as e:
        raise ValueError(f"after {e}") from e


class Sent:
    """What one websocket has sent: events above ``floor`` and not yet seen.

    ``floor`` starts at the cursor the page came with. Remembering sent
    cursors, rather than only the largest, also lets through an event that
    was committed after one with a larger cursor (two ingest consumers).
    """

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self.last = floor
        self.cursors: set[int] = set()
        self.at = time.monotonic()

    def is_new(self, cursor: int) -> bool:
        return cursor > self.floor and cursor not in self.cursors

    def add(self, cursors: list[int]) -> None:
        if not cursors:
            return
        self.cursors.update(cursors)
        self.last = max(self.last, *cursors)
        self.at = time.monotonic()
        if len(self.cursors) > REMEMBERED:
            kept = sorted(self.cursors)[-REMEMBERED // 2 :]
            self.floor = kept[0] - 1
            self.cursors = set(kept)


class WakingEvent:
    """simple-websocket's event, which also wakes the feed when set.

    Its reader sets the event when the page sends something or goes away;
    the feed then stops waiting for frames and sees the closed connection.
    """

    def __init__(self, event, feed) -> None:
        self._event = event
        self._feed = feed

    def set(self) -> None:
        self._event.set()
        self._feed.wake()

    def __getattr__(self, name: str):
        return getattr(self._event, name)


def relay(ws, subscription, after: int | None) -> None:
    streamer_name = subscription.streamer
    ws.event = WakingEvent(ws.event, subscription)
    subscription.abandon = lambda: ws.sock.shutdown(socket.SHUT_RDWR)
    sent = Sent(after or 0)
    # The page takes the first frame as proof that the feed works, so the
    # first read always sends one, empty if there is nothing to show.
    if after is None:
        send_recent(ws, streamer_name, sent)
    elif not send_newer(ws, streamer_name, sent):
        ws.send(json.dumps({"kind": "events", "events": []}))

    subscription.write_now = direct_writer(ws, subscription, sent)
    try:
        follow(ws, subscription, sent)
    finally:
        subscription.write_now = None
        # A frame left half-written holds the socket's lock; let go of it.
        if any(isinstance(item, Remainder) for item in subscription.items):
            ws.sock.lock.release()


def follow(ws, subscription, sent: Sent) -> None:
    """Forward what the relay queues until the page goes or must resync."""
    streamer_name = subscription.streamer
    poll = broker.relay.poll_seconds
    while ws.connected:
        items = subscription.take(poll or PING_SECONDS)
        if items and isinstance(items[0], Remainder):
            finish_write(ws, items.pop(0))
        if RESYNC in items:
            logger.info("Feed %s: fell behind, resync", streamer_name)
            ws.send(json.dumps({"kind": "resync", "after": str(sent.last)}))
            ws.close()
            return
        frames = [item for item in items if isinstance(item, Frame)]
        sent_any = send_frames(ws, frames, sent)
        if CATCH_UP in items or (poll and not items):
            sent_any = send_newer(ws, streamer_name, sent) or sent_any
        if not sent_any and time.monotonic() - sent.at > PING_SECONDS:
            ws.send(json.dumps({"kind": "ping"}))
            sent.at = time.monotonic()


class Remainder(bytes):
    """The unwritten end of a frame ``write_now`` could not write whole.

    The socket's lock stays held until the websocket has written it, so no
    other frame (or a pong) can land in the middle.
    """


def direct_writer(ws, subscription, sent: Sent):
    """A ``write_now`` for this page on gevent, or None elsewhere.

    Called by the relay's listener while this websocket sleeps with nothing
    queued. It writes a frame whose events are all new to the page straight
    to the socket with one non-blocking send; whatever the socket does not
    take is queued as a ``Remainder`` for the websocket. It returns False
    (and the frame is queued as usual) when the frame needs filtering, the
    socket is busy or full, or the page is gone. With threads, the websocket
    could wake mid-way, so this is for gevent's single-threaded loop only.
    """
    sock = ws.sock
    raw = getattr(getattr(sock, "_sock", None), "_sock", None)
    if not isinstance(sock, WholeSends) or raw is None:
        return None
    if not type(sock._sock).__module__.startswith("gevent"):
        return None

    def write_now(frame: Frame) -> bool:
        if frame.first <= sent.last or not ws.connected:
            return False
        if not sock.lock.acquire(blocking=False):
            return False
        try:
            written = raw.send(frame.wire)
        except BlockingIOError:
            written = 0
        except OSError:
            written = 0
        if written == 0:
            sock.lock.release()
            return False
        sent.add(frame.cursors)
        if written < len(frame.wire):
            subscription.items.appendleft(Remainder(frame.wire[written:]))
            subscription.ready.set()
        else:
            sock.lock.release()
        return True

    return write_now


def finish_write(ws, remainder: Remainder) -> None:
    """Write the end of a half-written frame, then free the socket."""
    try:
        ws.sock._sock.sendall(remainder)
    finally:
        ws.sock.lock.release()


def send_recent(ws, streamer_name: str, sent: Sent) -> None:
    """Send the latest events, oldest first (an empty frame if none)."""
    events = list_events(db.session, streamer_name, limit=RECENT)[::-1]
    end_read()
    send_events(ws, events, sent)


def send_newer(ws, streamer_name: str, sent: Sent) -> bool:
    """Send what the database holds past the last cursor sent, if anything."""
    sent_any = False
    while True:
        events = list_events_after(db.session, streamer_name, sent.last, BATCH)
        end_read()
        if not events:
            return sent_any
        events = [e for e in events if sent.is_new(e.id)]
        if events:
            send_events(ws, events, sent)
            sent_any = True


def end_read() -> None:
    """End the read transaction, so the next read sees newly committed rows.

    Closing keeps the loaded events usable (detached, not expired).
    """
    db.session.close()


def send_events(ws, events: list, sent: Sent) -> None:
    frame = {"kind": "events", "events": [event_to_json(e) for e in events]}
    ws.send(json.dumps(frame))
    if events:
        sent.add([e.id for e in events])


def send_frames(ws, frames: list[Frame], sent: Sent) -> bool:
    """Forward relayed frames in one write: as built, or only unsent events."""
    chunks = []
    for frame in frames:
        fresh = [sent.is_new(cursor) for cursor in frame.cursors]
        if not fresh:
            continue
        if all(fresh):
            # The frame as the relay built it once for every page.
            chunks.append(frame.wire)
        elif any(fresh):
            events = [e for e, new in zip(frame.events, fresh, strict=True) if new]
            text = json.dumps({"kind": "events", "events": events})
            chunks.append(wire_frame(text))
        else:
            continue
        sent.add([c for c, new in zip(frame.cursors, fresh, strict=True) if new])
    if not chunks:
        return False
    if not ws.connected:
        raise ConnectionClosed(ws.close_reason, ws.close_message)
    ws.sock.sendall(b"".join(chunks))
    return True
