"""Hourly validation of every stored Twitch user token, refreshed before expiry.

Twitch requires apps that keep user tokens to validate them hourly and to
stop using one it no longer accepts
(https://dev.twitch.tv/docs/authentication/validate-tokens/). A token that
expires before the next run is refreshed now; one that fails validation
gets one refresh; one Twitch refuses both ways is ended, which ends the
sessions signed in with it and disconnects the channel it was consent for.
An outage of Twitch leaves tokens as they are, for the next run.
"""

import logging
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from app.auth import end_token
from app.auth import now
from app.auth import refresh_stored
from app.crypto import UnreadableToken
from app.extensions import db
from app.models import TwitchToken
from app.twitch import TwitchError
from app.twitch import twitch
from jobs.context import job

logger = logging.getLogger(__name__)

# Refresh what would expire before the next hourly run, with a margin.
REFRESH_AHEAD = timedelta(minutes=70)


@job
def validate_tokens() -> str:
    """Validate (or refresh) every live stored token; end the dead ones."""
    checked = refreshed = ended = 0
    rows = db.session.scalars(
        sa.select(TwitchToken).where(TwitchToken.ended_at.is_(None))
    ).all()
    for row in rows:
        try:
            result = check(row)
        except TwitchError:
            logger.warning("Token %s: Twitch unreachable, checked next time", row.id)
            db.session.rollback()
            continue
        checked += 1
        refreshed += result == "refreshed"
        ended += result == "ended"
        db.session.commit()
    summary = f"{checked} checked, {refreshed} refreshed, {ended} ended"
    logger.info("Tokens: %s", summary)
    return summary


def check(row: TwitchToken) -> str:
    """Validate one token, refreshing it when due; say what happened."""
    box = current_app.extensions["token_box"]
    try:
        access = box.open(row.access_token)
    except UnreadableToken:
        end_token(row, "stored token unreadable (SECRET_KEY changed)")
        return "ended"

    expires_at = row.expires_at
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=now().tzinfo)
    due = expires_at is None or expires_at - REFRESH_AHEAD <= now()
    info = None if due else twitch().validate(access)
    result = "validated"
    if info is None:
        info = refresh_stored(row)
        result = "refreshed"
    if info is None:
        end_token(row, "Twitch refused the token and its refresh")
        return "ended"
    row.validated_at = now()
    row.expires_at = now() + timedelta(seconds=int(info.get("expires_in") or 0))
    return result
