"""JSON API: stored events, newest first, with cursors for paging; channel state."""

import re

from flask import Blueprint
from flask import jsonify
from flask import request

from app.channel import describe_channel
from app.errors import ApiError
from app.extensions import db
from app.logins import normalize_login
from app.store import event_to_json
from app.store import list_events
from app.store import parse_cursor

bp = Blueprint("api", __name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
DIGITS = re.compile(r"[0-9]{1,3}")


@bp.get("/events")
def events():
    """List stored events of every streamer, newest first."""
    return page_of_events(None)


@bp.get("/streamers/<login>/events")
def streamer_events(login: str):
    """List one streamer's stored events, newest first."""
    return page_of_events(read_login(login))


@bp.get("/streamers/<login>/channel")
def streamer_channel(login: str):
    """Say whether the channel is online, its title, and which types are live."""
    return jsonify(describe_channel(db.session, read_login(login)))


def read_login(raw: str) -> str:
    try:
        return normalize_login(raw)
    except ValueError as e:
        raise ApiError("invalid_login", str(e)) from e


def page_of_events(streamer_name: str | None):
    limit = read_limit(request.args.get("limit"))
    before = read_before(request.args.get("before"))
    found = list_events(db.session, streamer_name, limit=limit, before=before)
    next_cursor = str(found[-1].id) if len(found) == limit else None
    return jsonify(events=[event_to_json(e) for e in found], next_cursor=next_cursor)


def read_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        message = f"limit must be a whole number from 1 to {MAX_LIMIT}; got {raw!r}"
        raise ApiError("invalid_limit", message)
    return int(raw)


def read_before(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return parse_cursor(raw)
    except ValueError as e:
        raise ApiError("invalid_before", f"before {e}") from e
