"""JSON API: stored events, newest first, with cursors for paging."""

import re

from flask import Blueprint
from flask import jsonify
from flask import request

from app.errors import ApiError
from app.extensions import db
from app.logins import normalize_login
from app.store import event_to_json
from app.store import list_events

bp = Blueprint("api", __name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
DIGITS = re.compile(r"[0-9]{1,19}")


@bp.get("/events")
def events():
    """List stored events of every streamer, newest first."""
    return page_of_events(None)


@bp.get("/streamers/<login>/events")
def streamer_events(login: str):
    """List one streamer's stored events, newest first."""
    try:
        streamer_name = normalize_login(login)
    except ValueError as e:
        raise ApiError("invalid_login", str(e)) from e
    return page_of_events(streamer_name)


def page_of_events(streamer_name: str | None):
    limit = read_int_param("limit", DEFAULT_LIMIT, MAX_LIMIT)
    before = read_int_param("before", None, None)
    found = list_events(db.session, streamer_name, limit=limit, before=before)
    next_cursor = str(found[-1].id) if len(found) == limit else None
    return jsonify(events=[event_to_json(e) for e in found], next_cursor=next_cursor)


def read_int_param(name: str, default: int | None, most: int | None) -> int | None:
    """Read a positive integer query parameter, or raise ``ApiError``."""
    raw = request.args.get(name)
    if raw is None:
        return default

    accepted = f"a whole number from 1 to {most}" if most else "a cursor from 1 up"
    if not DIGITS.fullmatch(raw) or not 1 <= int(raw) <= (most or 2**63 - 1):
        raise ApiError(f"invalid_{name}", f"{name} must be {accepted}; got {raw!r}")
    return int(raw)
