"""What the watch page says about a channel: live or not, title, live types.

The stream status and the title come from the latest stored
``stream.online``/``stream.offline`` and ``channel.update`` events, by when
they happened rather than when they arrived, so a late delivery never
overrides a newer state.

Which types are live comes from the ``subscriptions`` table: an enabled
subscription of the streamer makes its type live; every other feed type
gets a reason. Twitch names the streamer of a subscription by id only, so
the login is matched to an id through the events stored for it; until a
channel's first event arrives, none of its subscriptions can be matched.
"""

from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.catalogue import FEED_TYPES
from app.catalogue import GROUPS
from app.catalogue import FeedType
from app.catalogue import is_public
from app.events import format_timestamp
from app.models import Event
from app.models import Subscription

STATUS_TYPES = ("stream.online", "stream.offline")
ENABLED = "enabled"

NOT_SUBSCRIBED = "not subscribed yet"
NOT_CONNECTED = "the streamer has not connected streamfeed"

# Subscription statuses other than enabled, in the words the page uses.
# Twitch adds reasons over time; unknown ones are shown by name.
STATUS_WORDS = {
    "authorization_revoked": "the streamer withdrew streamfeed's access",
    "user_removed": "the Twitch account no longer exists",
    "notification_failures_exceeded": (
        "Twitch stopped it after too many failed deliveries"
    ),
    "version_removed": "Twitch no longer offers this version of the type",
    "moderator_removed": ("the moderator who connected it is no longer a moderator"),
    "chat_user_banned": "the chat bot was banned from the channel's chat",
    "beta_maintenance": "Twitch paused this beta type for maintenance",
    "webhook_callback_verification_pending": "waiting for Twitch to verify it",
    "webhook_callback_verification_failed": "Twitch could not verify it",
}


def describe_channel(session: so.Session, login: str) -> dict[str, Any]:
    """Return the channel's stream status, title and live types, as JSON."""
    streamer_id = find_streamer_id(session, login)
    statuses = latest_statuses(session, streamer_id)
    return {
        "streamer": {"login": login, "id": streamer_id},
        "stream": describe_stream(latest_event(session, login, STATUS_TYPES)),
        "info": describe_info(latest_event(session, login, ("channel.update",))),
        "groups": [{"key": key, "label": label} for key, label in GROUPS.items()],
        "types": describe_types(statuses),
    }


def find_streamer_id(session: so.Session, login: str) -> str | None:
    """Return the Twitch id of ``login``, as its latest stored event gives it."""
    query = (
        sa.select(Event.streamer_id)
        .where(Event.streamer_name == login, Event.streamer_id.is_not(None))
        .order_by(Event.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def latest_event(
    session: so.Session, login: str, event_types: tuple[str, ...]
) -> Event | None:
    """Return the streamer's event of these types that happened last."""
    query = (
        sa.select(Event)
        .where(Event.streamer_name == login, Event.event_type.in_(event_types))
        .order_by(Event.occurred_at.desc(), Event.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def latest_statuses(session: so.Session, streamer_id: str | None) -> dict[str, str]:
    """Return each subscription type's status for the streamer.

    One enabled subscription is enough for a type (a raid has two, one per
    direction); otherwise the status Twitch gave last counts.
    """
    if streamer_id is None:
        return {}

    query = (
        sa.select(Subscription.type, Subscription.status)
        .where(Subscription.streamer_id == streamer_id)
        .order_by(Subscription.updated_at)
    )
    statuses: dict[str, str] = {}
    for subscription_type, status in session.execute(query):
        if statuses.get(subscription_type) != ENABLED:
            statuses[subscription_type] = status
    return statuses


def describe_stream(event: Event | None) -> dict[str, Any]:
    """Say whether the stream is online, and since when, from its last change."""
    if event is None:
        return {"status": "unknown", "occurred_at": None, "started_at": None}

    online = event.event_type == "stream.online"
    body = event.payload.get("event") or {}
    return {
        "status": "online" if online else "offline",
        "occurred_at": format_timestamp(event.occurred_at),
        "started_at": body.get("started_at") if online else None,
    }


def describe_info(event: Event | None) -> dict[str, Any] | None:
    """Return the title and category of the channel's last update, if any."""
    if event is None:
        return None

    body = event.payload.get("event") or {}
    return {
        "title": body.get("title") or "",
        "category": body.get("category_name") or "",
        "occurred_at": format_timestamp(event.occurred_at),
    }


def describe_types(statuses: dict[str, str]) -> list[dict[str, Any]]:
    """Return every feed type with whether it is live here, and if not, why."""
    connected = any(
        status == ENABLED and not is_public(subscription_type)
        for subscription_type, status in statuses.items()
    )
    described = []
    for feed_type in FEED_TYPES:
        status = statuses.get(feed_type.type)
        reason = None if status == ENABLED else explain(feed_type, status, connected)
        described.append(
            {
                "type": feed_type.type,
                "version": feed_type.version,
                "label": feed_type.label,
                "group": feed_type.group,
                "scope": feed_type.scope,
                "live": status == ENABLED,
                "reason": reason,
            }
        )
    return described


def explain(feed_type: FeedType, status: str | None, connected: bool) -> str:
    """Say in plain words why a type is not live for the streamer."""
    if status is not None:
        return STATUS_WORDS.get(status, f"Twitch reports it as {status}")
    if feed_type.public or connected:
        return NOT_SUBSCRIBED
    return NOT_CONNECTED
