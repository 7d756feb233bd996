"""POST /webhooks/eventsub: verify, then answer by message type.

A verified notification is handed on in one of two ways. With REDIS_URL
set (production) it is appended to the ingest stream and answered 204 at
once; the database is not touched in the request, and when Redis cannot
take it the answer is 503 so that Twitch delivers it again. Without Redis
(embedded mode) it is stored in the request, as before. In production the
notifications take ``webhooks.fastpath`` in front of Flask, which applies
the same checks; this view answers them when it is not installed.
"""

import logging
from datetime import UTC
from datetime import datetime

import redis
from flask import Blueprint
from flask import Response
from flask import current_app
from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from app import deliveries
from app import metrics
from app.events import build_rows
from app.events import find_streamer
from app.extensions import broker
from app.extensions import db
from app.ingest import entry_fields
from app.store import record_subscription
from app.store import store_events
from webhooks.appender import StreamAppender
from webhooks.messages import NOTIFICATION
from webhooks.messages import REVOCATION
from webhooks.messages import TIMESTAMP
from webhooks.messages import TOO_LARGE
from webhooks.messages import VERIFICATION
from webhooks.messages import Message
from webhooks.messages import Refused
from webhooks.messages import accepted_secrets
from webhooks.messages import check_challenge
from webhooks.messages import noted_id
from webhooks.messages import read_message
from webhooks.signature import fingerprint

logger = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)


@bp.post("/eventsub")
def receive() -> Response:
    """Answer one EventSub delivery from Twitch.

    200 with the challenge for a verification, 204 for a notification (new
    or redelivered) or a revocation; 400 for missing headers, a stale
    timestamp or a malformed body; 403 for a missing or wrong signature;
    413 for a body over WEBHOOK_MAX_BYTES.
    """
    message_id = noted_id(request.headers)
    now = datetime.now(UTC)
    try:
        raw = read_raw_body()
        message = read_message(request.headers, raw, secrets(), now)
    except Refused as e:
        return refuse(message_id, now, e)
    try:
        return answer(message, raw, now)
    except Refused as e:
        e.signed = True
        return refuse(message_id, now, e)


def refuse(message_id: str, now: datetime, refused: Refused) -> Response:
    note_refusal(current_app.extensions.get("redis"), message_id, now, refused)
    return Response(refused.reason + "\n", refused.status, mimetype="text/plain")


def note_refusal(client, message_id: str, now: datetime, refused: Refused) -> None:
    """Log and count a refusal, and note it for `cli.py explain` with Redis."""
    logger.warning(
        "EventSub %s: refused (%s), %s", message_id, refused.status, refused.reason
    )
    metrics.WEBHOOKS.labels(refused.kind).inc()
    if client is not None:
        deliveries.record_refusal(client, message_id, now, refused)


def read_raw_body() -> bytes:
    limit = current_app.config["WEBHOOK_MAX_BYTES"]
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge as e:
        raise Refused(413, f"body is larger than {limit} bytes", TOO_LARGE) from e
    # Without Content-Length (chunked), Werkzeug stops reading at the limit
    # and hands back the truncated body; look for one byte more.
    if request.content_length is None and len(raw) >= limit:
        if request.environ["wsgi.input"].read(1):
            raise Refused(413, f"body is larger than {limit} bytes", TOO_LARGE)
    return raw


def secrets() -> tuple[str, ...]:
    return accepted_secrets(current_app.config)


def answer(message: Message, raw: bytes, now: datetime) -> Response:
    if message.type == VERIFICATION:
        metrics.WEBHOOKS.labels("challenge").inc()
        return answer_challenge(message)
    if message.type == NOTIFICATION:
        appender = current_app.extensions.get("stream_appender")
        if appender is not None:
            return buffer(appender, message, raw, now)
        return accept_notification(message)
    if message.type == REVOCATION:
        metrics.WEBHOOKS.labels("revocation").inc()
        return accept_revocation(message)

    # Twitch retries anything but 2xx; a type we do not know is not an error.
    logger.warning("EventSub %s: unknown message type, ignored", message.id)
    metrics.WEBHOOKS.labels("unknown_type").inc()
    return Response(status=204)


def buffer(appender: StreamAppender, message: Message, raw: bytes, now) -> Response:
    """Append the notification to the ingest stream; 503 if Redis cannot."""
    timestamp = request.headers[TIMESTAMP].strip()
    if not append_to_stream(appender, message.id, timestamp, raw, now):
        return Response(
            "event buffer unavailable, retry later\n", 503, mimetype="text/plain"
        )
    return Response(status=204)


def append_to_stream(
    appender: StreamAppender, message_id: str, timestamp: str, raw, now
) -> bool:
    """Buffer a verified notification for ingest, and count the outcome.

    The raw body is kept as Twitch sent it; ingest reads it again. Returns
    False when Redis cannot take it, so the caller answers 503 and Twitch
    delivers it again.
    """
    try:
        appender.append(entry_fields(message_id, timestamp, raw, now))
    except redis.RedisError as e:
        logger.error(
            "EventSub %s: not buffered, Redis unavailable (%s); answered 503 "
            "so that Twitch delivers it again",
            message_id,
            type(e).__name__,
        )
        metrics.WEBHOOKS.labels("unavailable").inc()
        return False
    metrics.WEBHOOKS.labels("accepted").inc()
    logger.debug("EventSub %s: buffered", message_id)
    return True


def answer_challenge(message: Message) -> Response:
    """Echo the challenge as plain text, which enables the subscription."""
    challenge = check_challenge(message.body)
    subscription = dict(message.subscription, status="enabled")
    signed_with = fingerprint(secrets()[message.secret_index])
    save_subscription(subscription, signed_with)
    logger.info("EventSub subscription %r: challenge answered", subscription["id"])
    return Response(challenge, 200, mimetype="text/plain")


def accept_notification(message: Message) -> Response:
    """Store the event unless its message id is already stored."""
    rows = build_rows(message.id, message.body, message.sent_at, datetime.now(UTC))
    session = db.session
    new_events = store_events(session, rows)
    session.commit()

    broker.announce({e.streamer_name for e in new_events if e.streamer_name})
    if new_events:
        metrics.WEBHOOKS.labels("accepted").inc()
        logger.info("EventSub %s: stored %s", message.id, rows[0]["event_type"])
    else:
        metrics.WEBHOOKS.labels("duplicate").inc()
        logger.info("EventSub %s: duplicate message, skipped", message.id)
    return Response(status=204)


def accept_revocation(message: Message) -> Response:
    """Record that Twitch ended a subscription, and why."""
    subscription = message.subscription
    save_subscription(subscription)
    logger.warning(
        # Quoted and cut short: these come from the body, newlines and all.
        "EventSub subscription %r: revoked (%.80r)",
        subscription["id"],
        subscription.get("status"),
    )
    return Response(status=204)


def save_subscription(
    subscription: dict, secret_fingerprint: str | None = None
) -> None:
    streamer_id, _ = find_streamer(subscription, {})
    session = db.session
    record_subscription(session, subscription, streamer_id, secret_fingerprint)
    session.commit()
