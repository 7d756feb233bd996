"""Follower backfill: a newly connected channel's followers, as follow events.

When a channel is connected with ``moderator:read:followers``, Helix Get
Channel Followers (all pages, with that consent's user token, refreshed on
a 401) gives who followed it before streamfeed did. Each becomes a stored
``channel.follow`` event whose message id is made from the channel and the
follower (``backfill:follow:<channel>:<user>``), so a second run stores
nothing new; a follow already stored from a webhook is skipped too. The
payload carries ``"backfilled": true``, which the API and the feed show.
"""

import logging
from datetime import UTC
from datetime import datetime

import sqlalchemy as sa
from flask import current_app

from app.auth import refresh_stored
from app.events import build_row
from app.events import parse_timestamp
from app.extensions import db
from app.models import Event
from app.models import Streamer
from app.store import store_events
from app.twitch import twitch
from jobs.context import job
from jobs.subscriptions import consents_for

logger = logging.getLogger(__name__)

SCOPE = "moderator:read:followers"
BATCH = 500


def message_id(channel_id: str, user_id: str) -> str:
    return f"backfill:follow:{channel_id}:{user_id}"[:100]


@job
def backfill_followers(channel_id: str) -> str:
    """Store the channel's followers as follow events, once each."""
    consent = next(
        (row for row, c in consents_for(channel_id) if SCOPE in c.scopes), None
    )
    if consent is None:
        logger.info("Channel %s: no consent with %s, no backfill", channel_id, SCOPE)
        return "no consent with moderator:read:followers"

    box = current_app.extensions["token_box"]
    state = {"token": box.open(consent.access_token)}

    def refresh() -> str | None:
        if refresh_stored(consent) is None:
            return None
        db.session.commit()
        state["token"] = box.open(consent.access_token)
        return state["token"]

    login = consent.channel_login or channel_id
    known = set(
        db.session.scalars(
            sa.select(Event.user_id).where(
                Event.event_type == "channel.follow", Event.streamer_id == channel_id
            )
        )
    )
    subscription = {
        "id": f"backfill:{channel_id}",
        "type": "channel.follow",
        "version": "2",
        "status": "enabled",
        "cost": 0,
        "condition": {
            "broadcaster_user_id": channel_id,
            "moderator_user_id": consent.twitch_user_id,
        },
        "transport": {"method": "backfill"},
    }
    received = datetime.now(UTC)
    rows, stored, seen = [], 0, 0
    followers = twitch().channel_followers(
        channel_id, user_token=state["token"], refresh=refresh
    )
    for follower in followers:
        seen += 1
        if str(follower.get("user_id")) in known:
            continue
        event = {
            "user_id": str(follower.get("user_id")),
            "user_login": follower.get("user_login"),
            "user_name": follower.get("user_name"),
            "broadcaster_user_id": channel_id,
            "broadcaster_user_login": login,
            "broadcaster_user_name": login,
            "followed_at": follower.get("followed_at"),
        }
        followed = parse_timestamp(follower["followed_at"])
        row = build_row(
            message_id(channel_id, event["user_id"]),
            subscription,
            event,
            followed,
            received,
        )
        row["payload"]["backfilled"] = True
        rows.append(row)
        if len(rows) >= BATCH:
            stored += len(store_events(db.session, rows))
            db.session.commit()
            rows = []
    stored += len(store_events(db.session, rows))
    streamer = db.session.get(Streamer, channel_id)
    if streamer is not None:
        streamer.backfilled_at = received
    db.session.commit()
    logger.info(
        "Channel %s: backfill stored %s of %s followers", channel_id, stored, seen
    )
    return f"{stored} stored of {seen} followers"
