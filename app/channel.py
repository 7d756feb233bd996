"""What the watch page says about a channel: live or not, title, live types.

The stream status and the title come from the latest stored
``stream.online``/``stream.offline`` and ``channel.update`` events, by when
they happened rather than when they arrived, so a late delivery never
overrides a newer state.

Which types are live comes from the ``subscriptions`` table: an enabled
subscription of the streamer makes its type live; every other feed type
gets a reason: the status Twitch gave it (a revocation), why the jobs did
not create it (``streamers.notes``: a scope Twitch refused), that the
streamer has not connected streamfeed (no live channel consent), or that
streamfeed does not subscribe to the type at all. Twitch names the
streamer of a subscription by id only: the login is matched to an id
through the ``streamers`` the jobs keep, else through its stored events.
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
from app.models import Streamer
from app.models import Subscription
from app.models import TwitchToken

STATUS_TYPES = ("stream.online", "stream.offline")
ENABLED = "enabled"

NOT_SUBSCRIBED = "not subscribed yet"
NOT_CONNECTED = "the streamer has not connected streamfeed"
NOT_ASKED = "streamfeed does not subscribe to this type"

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
    streamer = session.scalar(
        sa.select(Streamer).where(Streamer.login == login).limit(1)
    )
    streamer_id = streamer.id if streamer else find_streamer_id(session, login)
    statuses = latest_statuses(session, streamer_id)
    notes = dict(streamer.notes or {}) if streamer else {}
    return {
        "streamer": {"login": login, "id": streamer_id},
        "stream": describe_stream(latest_event(session, login, STATUS_TYPES)),
        "info": describe_info(latest_event(session, login, ("channel.update",))),
        "groups": [{"key": key, "label": label} for key, label in GROUPS.items()],
        "types": describe_types(statuses, notes, has_consent(session, streamer_id)),
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


def has_consent(session: so.Session, streamer_id: str | None) -> bool:
    """Whether the streamer or a moderator has connected the channel."""
    if streamer_id is None:
        return False
    query = sa.select(TwitchToken.id).where(
        TwitchToken.purpose == "channel",
        TwitchToken.channel_id == streamer_id,
        TwitchToken.ended_at.is_(None),
    )
    return session.scalar(query.limit(1)) is not None


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


def describe_types(
    statuses: dict[str, str],
    notes: dict[str, str] | None = None,
    consent: bool = False,
) -> list[dict[str, Any]]:
    """Return every feed type with whether it is live here, and if not, why."""
    from jobs.plan import SUBSCRIBED_TYPES

    notes = notes or {}
    connected = consent or any(
        status == ENABLED and not is_public(subscription_type)
        for subscription_type, status in statuses.items()
    )
    described = []
    for feed_type in FEED_TYPES:
        status = statuses.get(feed_type.type)
        if status == ENABLED:
            reason = None
        elif status is None and feed_type.type not in SUBSCRIBED_TYPES:
            reason = NOT_ASKED
        elif status is None and feed_type.type in notes:
            reason = notes[feed_type.type]
        else:
            reason = explain(feed_type, status, connected)
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
