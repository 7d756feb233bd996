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

from app.auth import revalidate
from app.extensions import db
from app.models import TwitchToken
from app.twitch import TwitchError
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
    return revalidate(row, REFRESH_AHEAD)
