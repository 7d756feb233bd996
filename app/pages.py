"""Pages: home (sign in, pick a favorite streamer) and the watch page."""

import ipaddress
import re
from urllib.parse import urlencode
from urllib.parse import urlsplit

from flask import Blueprint
from flask import abort
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from app.catalogue import FEED_TYPES
from app.catalogue import GROUPS
from app.channel import describe_channel
from app.extensions import db
from app.logins import normalize_login
from app.twitch import TwitchError
from app.twitch import twitch
from jobs.queue import enqueue
from jobs.subscriptions import ensure_streamer

bp = Blueprint("pages", __name__)

HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


@bp.get("/")
def home():
    """Offer sign-in, or the signed-in viewer's favorite; ask for a login."""
    return render_home()


def render_home(status: int = 200, **fields):
    fields = {"login": "", "error": None, "favorite_error": None} | fields
    fields["session_ended"] = g.get("session_ended")
    return render_template("pages/home.html", **fields), status


@bp.post("/favorite")
def choose_favorite():
    """Save the signed-in viewer's favorite streamer, checked with Helix."""
    viewer = g.get("viewer")
    if viewer is None:
        return render_home(401, favorite_error="Sign in to keep a favorite streamer.")

    typed = request.form.get("login", "")
    try:
        login = normalize_login(typed)
    except ValueError as e:
        return render_home(400, favorite=typed, favorite_error=sentence(str(e)))

    try:
        user = twitch().find_user(login)
    except TwitchError:
        message = "Twitch cannot be reached right now, so {} could not be checked."
        return render_home(503, favorite=typed, favorite_error=message.format(login))
    if user is None:
        message = f"There is no Twitch channel named {login}."
        return render_home(404, favorite=typed, favorite_error=message)

    viewer.favorite_login = user["login"]
    viewer.favorite_id = user["id"]
    db.session.commit()
    # One shared set of subscriptions per streamer: the job creates only
    # what is missing, so a hundred viewers cost one set.
    enqueue(ensure_streamer, user["id"], user["login"])
    return redirect(url_for("pages.watch", login=viewer.favorite_login))


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


@bp.get("/watch")
def choose():
    """Check the login typed on the home page and go to its watch page."""
    typed = request.args.get("login", "")
    try:
        login = normalize_login(typed)
    except ValueError as e:
        return render_home(400, login=typed, error=sentence(str(e)))
    return redirect(url_for("pages.watch", login=login))


@bp.get("/watch/<login>")
def watch(login: str):
    """Show the player, the chat and the live event feed of one streamer."""
    try:
        login = normalize_login(login)
    except ValueError as e:
        abort(404, description=f"No such channel page: {e}.")

    parent, note = embed_parent(request.host)
    return render_template(
        "pages/watch.html",
        login=login,
        player_url=player_url(login, parent),
        chat_url=chat_url(login, parent),
        embed_note=note,
        ws_url_path=f"/ws/streamers/{login}",
        channel=describe_channel(db.session, login),
        type_groups=group_feed_types(),
        # Back from connecting the channel (app/auth.py finish_connect).
        just_connected=request.args.get("connected") == "1",
    )


def group_feed_types() -> list[dict]:
    """Return the feed types under their group headings, for the types panel."""
    return [
        {
            "key": key,
            "label": label,
            "types": [t for t in FEED_TYPES if t.group == key],
        }
        for key, label in GROUPS.items()
    ]


def embed_parent(host: str) -> tuple[str, str | None]:
    """Return the ``parent`` for Twitch embeds, or a note on why there is none.

    Twitch only embeds into pages served from a host name it can check,
    never from an IP address (https://dev.twitch.tv/docs/embed/).
    """
    parts = urlsplit("//" + host)
    try:
        hostname, port = parts.hostname or "", parts.port
    except ValueError:
        hostname, port = "", None
    if HOSTNAME.fullmatch(hostname) and not is_ip_address(hostname):
        return hostname, None

    local = f"http://localhost:{port}" if port else "http://localhost"
    note = (
        "Twitch only shows its player and chat on pages opened by host name, "
        f"not by an IP address. Open {local} to see them."
    )
    return "", note


def is_ip_address(hostname: str) -> bool:
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


def player_url(login: str, parent: str) -> str:
    query = urlencode({"channel": login, "parent": parent, "muted": "true"})
    return f"https://player.twitch.tv/?{query}"


def chat_url(login: str, parent: str) -> str:
    return f"https://www.twitch.tv/embed/{login}/chat?{urlencode({'parent': parent})}"
