"""POST /webhooks/eventsub: verify, then answer by message type."""

import logging
from datetime import UTC
from datetime import datetime

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from app.events import build_rows
from app.events import find_streamer
from app.extensions import broker
from app.extensions import db
from app.store import record_subscription
from app.store import store_events
from webhooks.messages import MESSAGE_ID
from webhooks.messages import NOTIFICATION
from webhooks.messages import REVOCATION
from webhooks.messages import VERIFICATION
from webhooks.messages import Message
from webhooks.messages import Refused
from webhooks.messages import check_challenge
from webhooks.messages import check_notification
from webhooks.messages import read_message

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
    message_id = request.headers.get(MESSAGE_ID, "")[:100]
    try:
        message = read_message(
            request.headers, read_raw_body(), secrets(), datetime.now(UTC)
        )
        return answer(message)
    except Refused as e:
        logger.warning("EventSub %s: refused (%s), %s", message_id, e.status, e.reason)
        return Response(e.reason + "\n", e.status, mimetype="text/plain")


def read_raw_body() -> bytes:
    try:
        return request.get_data(cache=False)
    except RequestEntityTooLarge as e:
        limit = current_app.config["WEBHOOK_MAX_BYTES"]
        raise Refused(413, f"body is larger than {limit} bytes") from e


def secrets() -> tuple[str, ...]:
    """The secrets a delivery may be signed with: the current one, and while
    rotating, the previous one (subscriptions not yet re-created use it)."""
    config = current_app.config
    previous = config.get("EVENTSUB_SECRET_PREVIOUS")
    current = config["EVENTSUB_SECRET"]
    return (current, previous) if previous else (current,)


def answer(message: Message) -> Response:
    if message.type == VERIFICATION:
        return answer_challenge(message)
    if message.type == NOTIFICATION:
        return accept_notification(message)
    if message.type == REVOCATION:
        return accept_revocation(message)

    # Twitch retries anything but 2xx; a type we do not know is not an error.
    logger.warning("EventSub %s: unknown message type, ignored", message.id)
    return Response(status=204)


def answer_challenge(message: Message) -> Response:
    """Echo the challenge as plain text, which enables the subscription."""
    challenge = check_challenge(message.body)
    subscription = dict(message.subscription, status="enabled")
    save_subscription(subscription)
    logger.info("EventSub subscription %s: challenge answered", subscription["id"])
    return Response(challenge, 200, mimetype="text/plain")


def accept_notification(message: Message) -> Response:
    """Store the event unless its message id is already stored."""
    check_notification(message.body)
    rows = build_rows(message.id, message.body, message.sent_at, datetime.now(UTC))
    session = db.session
    new_events = store_events(session, rows)
    session.commit()

    broker.announce({e.streamer_name for e in new_events if e.streamer_name})
    if new_events:
        logger.info("EventSub %s: stored %s", message.id, rows[0]["event_type"])
    else:
        logger.info("EventSub %s: duplicate message, skipped", message.id)
    return Response(status=204)


def accept_revocation(message: Message) -> Response:
    """Record that Twitch ended a subscription, and why."""
    subscription = message.subscription
    save_subscription(subscription)
    logger.warning(
        "EventSub subscription %s: revoked (%s)",
        subscription["id"],
        subscription.get("status"),
    )
    return Response(status=204)


def save_subscription(subscription: dict) -> None:
    streamer_id, _ = find_streamer(subscription, {})
    session = db.session
    record_subscription(session, subscription, streamer_id)
    session.commit()
