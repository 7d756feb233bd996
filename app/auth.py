"""Sign-in with Twitch (and GitHub), 7-day sessions, and channel consent.

Sign-in is OAuth 2's authorization-code flow through authlib's Flask
client, with OpenID Connect for Twitch (the ``openid`` scope and nothing
else: viewers grant no access). A streamer, or a moderator of a channel,
can then *connect* that channel: a second consent for the scopes its
scoped EventSub types need. Tokens are kept encrypted (``app.crypto``).

Sessions live on the server (flask-session) and end 7 days after sign-in
however active they are. Twitch requires apps that keep sessions to
validate their tokens at sign-in and hourly, and to end a session whose
token Twitch no longer accepts
(https://dev.twitch.tv/docs/authentication/validate-tokens/); an expired
token is refreshed first.
"""

import logging
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Blueprint
from flask import Flask
from flask import abort
from flask import current_app
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for

from app.crypto import TokenBox
from app.crypto import UnreadableToken
from app.extensions import db
from app.logins import normalize_login
from app.models import TwitchToken
from app.models import User
from app.twitch import TwitchError
from app.twitch import twitch

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

SESSION_LIFETIME = timedelta(days=7)
VALIDATE_EVERY = timedelta(hours=1)
# Refresh a token this long before Twitch said it would expire.
REFRESH_MARGIN = timedelta(minutes=5)
SIGN_IN = "signin"
CHANNEL = "channel"
# What connecting a channel asks for: the scopes of the scoped feed types
# (app/catalogue.py), and the list of channels a moderator moderates.
CHANNEL_SCOPES = (
    "moderator:read:followers",
    "channel:read:subscriptions",
    "bits:read",
    "channel:read:redemptions",
    "channel:read:polls",
    "channel:read:predictions",
    "channel:read:hype_train",
    "channel:read:goals",
    "channel:read:charity",
    "channel:read:ads",
    "moderator:read:shoutouts",
    "user:read:moderated_channels",
)
PROVIDER_NAMES = {"twitch": "Twitch", "github": "GitHub"}
# Endpoints that never look at the viewer: no session check, no store read.
SESSIONLESS_BLUEPRINTS = {"webhooks", "live", "api", "twitch_simulator"}


class SignInProblem(Exception):
    """A sign-in that cannot finish, with what to tell the viewer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def init_app(app: Flask) -> None:
    """Register the configured providers and the session rules.

    Each app gets its own authlib registry, since authlib caches clients
    (and the discovery document) per registry.
    """
    oauth = OAuth(app)
    config = app.config
    app.extensions["token_box"] = TokenBox(config["SECRET_KEY"])
    if config["TWITCH_CLIENT_ID"]:
        register_twitch(oauth, config)
    if config["GITHUB_CLIENT_ID"]:
        oauth.register(
            "github",
            client_id=config["GITHUB_CLIENT_ID"],
            client_secret=config["GITHUB_CLIENT_SECRET"],
            access_token_url="https://github.com/login/oauth/access_token",
            authorize_url="https://github.com/login/oauth/authorize",
            api_base_url="https://api.github.com/",
            client_kwargs={"scope": ""},
        )
    app.before_request(load_viewer)
    app.context_processor(lambda: {"viewer": g.get("viewer"), "providers": providers()})


def register_twitch(oauth: OAuth, config) -> None:
    common = {
        "client_id": config["TWITCH_CLIENT_ID"],
        "client_secret": config["TWITCH_CLIENT_SECRET"],
        "server_metadata_url": (
            f"{config['TWITCH_AUTH_BASE_URL']}/oauth2/.well-known/openid-configuration"
        ),
    }
    # Twitch wants the client secret in the form body, not in Basic auth.
    method = "client_secret_post"
    oauth.register(
        "twitch",
        client_kwargs={"scope": "openid", "token_endpoint_auth_method": method},
        **common,
    )
    oauth.register(
        "twitch_channel",
        client_kwargs={
            "scope": " ".join(CHANNEL_SCOPES),
            "token_endpoint_auth_method": method,
        },
        authorize_params={"force_verify": "true"},
        **common,
    )


def oauth_client(name: str):
    """The current app's authlib client ``name``, or None if not configured."""
    return current_app.extensions["authlib.integrations.flask_client"].create_client(
        name
    )


def providers() -> list[dict[str, str]]:
    """The sign-in providers this app is configured for, Twitch first."""
    names = [name for name in PROVIDER_NAMES if oauth_client(name)]
    return [{"name": name, "label": PROVIDER_NAMES[name]} for name in names]


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite gives times back without their zone; they are stored in UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


# Routes


@bp.get("/login/<provider>")
def login(provider: str):
    """Start a sign-in with ``provider``; ``next`` is where to go after it."""
    client = oauth_client(provider) if provider in PROVIDER_NAMES else None
    if client is None:
        abort(404, description=f"Sign-in with {provider!r} is not configured here.")

    session["auth_intent"] = {"purpose": SIGN_IN, "next": safe_next(request.args)}
    return begin(client, provider)


@bp.get("/connect")
def connect():
    """Ask a signed-in Twitch viewer for the scopes a channel's events need.

    ``channel`` names the channel; without it, the viewer's own. A
    moderator connects a channel they moderate.
    """
    viewer = g.get("viewer")
    if viewer is None or viewer.provider != "twitch":
        return redirect(
            url_for("auth.login", provider="twitch", next=request.full_path)
        )

    g.connecting = ""  # a problem from here on is titled as connecting
    try:
        channel = normalize_login(request.args.get("channel") or viewer.login)
    except ValueError as e:
        raise SignInProblem(f"Cannot connect that channel: {e}.") from e
    g.connecting = channel
    if channel != viewer.login:
        # Said before Twitch asks for consent, not after.
        try:
            found = twitch().find_user(channel)
        except TwitchError as e:
            raise SignInProblem("Twitch cannot be reached right now.", 503) from e
        if found is None:
            raise SignInProblem(f"There is no Twitch channel named {channel}.", 404)
    session["auth_intent"] = {"purpose": CHANNEL, "channel": channel}
    return begin(oauth_client("twitch_channel"), "twitch")


def begin(client, provider: str):
    redirect_uri = url_for("auth.callback", provider=provider, _external=True)
    try:
        return client.authorize_redirect(redirect_uri)
    except (requests.RequestException, ValueError) as e:
        logger.warning("Sign-in %s: cannot reach the provider: %s", provider, e)
        raise SignInProblem(
            f"{PROVIDER_NAMES[provider]} cannot be reached right now; try again "
            "in a minute.",
            503,
        ) from e


@bp.get("/callback/<provider>")
def callback(provider: str):
    """Finish a sign-in or a channel connection the provider sent back."""
    if provider not in PROVIDER_NAMES or oauth_client(provider) is None:
        abort(404, description=f"Sign-in with {provider!r} is not configured here.")

    intent = session.pop("auth_intent", None) or {}
    purpose = intent.get("purpose", SIGN_IN)
    if purpose == CHANNEL:
        g.connecting = intent.get("channel") or ""
    client_name = "twitch_channel" if purpose == CHANNEL else provider
    token = fetch_token(oauth_client(client_name), provider)

    if purpose == CHANNEL and provider == "twitch":
        return finish_connect(token, intent.get("channel"))
    user, token_row = finish_sign_in(provider, token)
    start_session(user, token_row)
    return redirect(after_sign_in(user, intent.get("next")))


@bp.post("/logout")
def logout():
    """End the session on the server, and withdraw its Twitch token."""
    token_id = session.get("token_id")
    if token_id is not None:
        end_token(db.session.get(TwitchToken, token_id), "signed out", revoke=True)
        db.session.commit()
    session.clear()
    return redirect(url_for("pages.home"))


@bp.app_errorhandler(SignInProblem)
def show_problem(e: SignInProblem):
    """The problem, titled by what the viewer was doing, and a way to retry."""
    db.session.rollback()
    channel = g.get("connecting")
    if channel is None:
        title, retry = "Sign-in did not finish", None
    else:
        title = "Connecting the channel did not finish"
        retry = url_for("auth.connect", channel=channel or None)
    page = render_template(
        "auth/problem.html", title=title, message=e.message, retry=retry
    )
    return page, e.status


# Steps of the flow


def safe_next(args) -> str | None:
    """Return ``next`` if it is a path on this site, else None."""
    target = args.get("next") or ""
    if not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(ord(c) < 32 or c == "\\" for c in target):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def fetch_token(client, provider: str) -> dict[str, Any]:
    """Trade the code for a token; a denial or a bad state is a SignInProblem."""
    label = PROVIDER_NAMES[provider]
    error = request.args.get("error")
    if error:
        logger.info("Sign-in %s: provider answered %r", provider, error[:40])
        if error == "access_denied":
            raise SignInProblem(f"You did not allow streamfeed on {label}.")
        raise SignInProblem(f"{label} did not sign you in ({error[:60]}).")

    try:
        return client.authorize_access_token()
    except OAuthError as e:
        logger.warning("Sign-in %s: refused: %s", provider, e.error)
        raise SignInProblem(
            "This sign-in link has expired or was not started here "
            f"({e.error or 'invalid request'})."
        ) from e
    except (requests.RequestException, ValueError, KeyError) as e:
        logger.warning("Sign-in %s: failed: %s", provider, type(e).__name__)
        raise SignInProblem(f"{label} could not finish the sign-in.", 503) from e


def finish_sign_in(provider: str, token: dict[str, Any]):
    """Find or create the user, and keep its Twitch token."""
    if provider == "github":
        identity = github_identity(token)
        return upsert_user("github", identity), None

    info = checked_token_info(token["access_token"])
    identity = twitch_identity(token["access_token"], info)
    user = upsert_user("twitch", identity)
    row = keep_token(user, SIGN_IN, token, info)
    db.session.commit()
    return user, row


def checked_token_info(access_token: str) -> dict[str, Any]:
    """Validate a token we were just given, as Twitch requires at sign-in."""
    try:
        info = twitch().validate(access_token)
    except TwitchError as e:
        raise SignInProblem("Twitch cannot be reached right now.", 503) from e
    if not info or not info.get("user_id"):
        raise SignInProblem("Twitch did not accept the sign-in; try again.")
    return info


def twitch_identity(access_token: str, info: dict[str, Any]) -> dict[str, str]:
    try:
        users = twitch().get_users(user_token=access_token)
    except TwitchError as e:
        raise SignInProblem("Twitch cannot be reached right now.", 503) from e
    user = users[0] if users else {}
    return {
        "id": str(info["user_id"]),
        "login": info.get("login") or user.get("login") or "",
        "name": user.get("display_name") or info.get("login") or "",
    }


def github_identity(token: dict[str, Any]) -> dict[str, str]:
    try:
        response = oauth_client("github").get("user", token=token)
        body = response.json()
    except (requests.RequestException, ValueError) as e:
        raise SignInProblem("GitHub cannot be reached right now.", 503) from e
    if not response.ok or "id" not in body:
        raise SignInProblem("GitHub did not say who you are; try again.")
    login = str(body.get("login") or "")
    return {"id": str(body["id"]), "login": login, "name": body.get("name") or login}


def upsert_user(provider: str, identity: dict[str, str]) -> User:
    query = sa.select(User).where(
        User.provider == provider, User.provider_user_id == identity["id"]
    )
    user = db.session.scalar(query)
    moment = now()
    if user is None:
        user = User(
            provider=provider, provider_user_id=identity["id"], created_at=moment
        )
        db.session.add(user)
    user.login = identity["login"][:100]
    user.display_name = identity["name"][:255]
    user.signed_in_at = moment
    db.session.commit()
    return user


def keep_token(
    user: User, purpose: str, token: dict[str, Any], info: dict[str, Any], **fields
) -> TwitchToken:
    """Store a Twitch token, encrypted, with what validation said of it."""
    box = current_app.extensions["token_box"]
    moment = now()
    row = TwitchToken(
        user_id=user.id,
        purpose=purpose,
        twitch_user_id=str(info["user_id"]),
        scopes=" ".join(sorted(info.get("scopes") or [])),
        access_token=box.seal(token["access_token"]),
        refresh_token=box.seal(token["refresh_token"])
        if token.get("refresh_token")
        else None,
        expires_at=moment + timedelta(seconds=int(info.get("expires_in") or 0)),
        validated_at=moment,
        created_at=moment,
        **fields,
    )
    db.session.add(row)
    db.session.flush()
    return row


def start_session(user: User, token_row: TwitchToken | None) -> None:
    """A fresh session for the user, under a new session id."""
    session.clear()
    moment = now().timestamp()
    session["user_id"] = user.id
    session["token_id"] = token_row.id if token_row else None
    session["signed_in_at"] = moment
    session["validated_at"] = moment
    # A session id known before sign-in (a fixed one) must not carry over.
    current_app.session_interface.regenerate(session)
    logger.info("User %s: signed in with %s", user.id, user.provider)


def after_sign_in(user: User, target: str | None) -> str:
    if target:
        return target
    if user.favorite_login:
        return url_for("pages.watch", login=user.favorite_login)
    return url_for("pages.home")


def finish_connect(token: dict[str, Any], channel: str | None):
    """Keep a channel consent, after checking who may give it for the channel."""
    viewer = g.get("viewer")
    if viewer is None:
        raise SignInProblem("Sign in first, then connect your channel.")

    info = checked_token_info(token["access_token"])
    if str(info["user_id"]) != viewer.provider_user_id:
        raise SignInProblem("Connect the channel with the Twitch account you use here.")
    channel = channel or info.get("login")
    channel_id = channel_id_for(info, token["access_token"], channel)

    for old in db.session.scalars(
        sa.select(TwitchToken).where(
            TwitchToken.user_id == viewer.id,
            TwitchToken.purpose == CHANNEL,
            TwitchToken.channel_id == channel_id,
            TwitchToken.ended_at.is_(None),
        )
    ):
        end_token(old, "replaced by a new consent")
    row = keep_token(
        viewer, CHANNEL, token, info, channel_id=channel_id, channel_login=channel
    )
    db.session.commit()
    logger.info("User %s: connected channel %s", viewer.id, channel_id)
    start_channel_jobs(channel_id, channel, row.scopes.split())
    return redirect(url_for("pages.watch", login=channel, connected=1))


def start_channel_jobs(channel_id: str, login: str, scopes: list[str]) -> None:
    """Subscribe the scoped types the consent allows, and backfill followers."""
    from jobs.backfill import SCOPE
    from jobs.backfill import backfill_followers
    from jobs.queue import enqueue
    from jobs.subscriptions import ensure_streamer

    enqueue(ensure_streamer, channel_id, login)
    if SCOPE in scopes:
        enqueue(backfill_followers, channel_id)


def channel_id_for(info: dict[str, Any], access_token: str, channel: str) -> str:
    """The id of the channel; a moderator must moderate it."""
    if channel == info.get("login"):
        return str(info["user_id"])
    try:
        moderated = twitch().moderated_channels(
            str(info["user_id"]), user_token=access_token
        )
    except TwitchError as e:
        raise SignInProblem("Twitch cannot be reached right now.", 503) from e
    for entry in moderated:
        if entry.get("broadcaster_login") == channel:
            return str(entry["broadcaster_id"])
    raise SignInProblem(
        f"You are not a moderator of {channel}, so you cannot connect it. "
        "Ask the streamer or one of their moderators."
    )


# The session rules, before every request that looks at the viewer


def load_viewer() -> None:
    """Set ``g.viewer``, ending the session when its time or token is up."""
    g.viewer = None
    g.session_ended = None
    if request.blueprint in SESSIONLESS_BLUEPRINTS or request.endpoint == "static":
        return
    user_id = session.get("user_id")
    if user_id is None:
        return

    signed_in_at = datetime.fromtimestamp(session.get("signed_in_at", 0), UTC)
    if now() - signed_in_at > SESSION_LIFETIME:
        return end_session("Your session ended 7 days after you signed in.")
    user = db.session.get(User, user_id)
    if user is None:
        return end_session("Your account is gone; sign in again.")

    token_id = session.get("token_id")
    if token_id is not None and not token_still_good(token_id):
        return end_session("Twitch no longer accepts your sign-in.")
    g.viewer = user


def end_session(reason: str) -> None:
    logger.info("Session of user %s: ended (%s)", session.get("user_id"), reason)
    session.clear()
    g.session_ended = reason


def token_still_good(token_id: int) -> bool:
    """Whether the session's Twitch token is alive, validating it hourly."""
    row = db.session.get(TwitchToken, token_id)
    if row is None or row.ended_at is not None:
        return False
    validated = datetime.fromtimestamp(session.get("validated_at", 0), UTC)
    if now() - validated < VALIDATE_EVERY:
        return True

    try:
        alive = revalidate(row) != "ended"
    except TwitchError:
        # An outage is not the token's fault: keep the session, try again
        # on a later request.
        logger.warning("Token %s: cannot validate now, Twitch unreachable", row.id)
        return True
    db.session.commit()
    if alive:
        session["validated_at"] = now().timestamp()
    return alive


def revalidate(row: TwitchToken, margin: timedelta = REFRESH_MARGIN) -> str:
    """Validate a stored token, refreshing it when it expires within
    ``margin`` or Twitch refuses it; end it if dead.

    Returns what happened: ``validated``, ``refreshed`` or ``ended``.
    """
    box = current_app.extensions["token_box"]
    try:
        access = box.open(row.access_token)
    except UnreadableToken:
        end_token(row, "stored token unreadable (SECRET_KEY changed)")
        return "ended"

    expires_at = as_utc(row.expires_at)
    info = None
    result = "validated"
    if expires_at is None or expires_at - margin > now():
        info = twitch().validate(access)
    if info is None:
        info = refresh_stored(row)
        result = "refreshed"
    if info is None:
        end_token(row, "Twitch refused the token and its refresh")
        return "ended"

    row.validated_at = now()
    row.expires_at = now() + timedelta(seconds=int(info.get("expires_in") or 0))
    return result


def refresh_stored(row: TwitchToken) -> dict[str, Any] | None:
    """Refresh a stored token in place; return its validation, or None."""
    box = current_app.extensions["token_box"]
    if not row.refresh_token:
        return None
    try:
        refreshed = twitch().refresh(box.open(row.refresh_token))
    except UnreadableToken:
        return None
    if not refreshed or not refreshed.get("access_token"):
        return None

    row.access_token = box.seal(refreshed["access_token"])
    # Twitch may hand out a new refresh token; the old one may stop working.
    if refreshed.get("refresh_token"):
        row.refresh_token = box.seal(refreshed["refresh_token"])
    logger.info("Token %s: refreshed", row.id)
    return twitch().validate(refreshed["access_token"])


def end_token(row: TwitchToken | None, reason: str, revoke: bool = False) -> None:
    """Mark a token as no longer usable; withdraw it at Twitch if asked."""
    if row is None or row.ended_at is not None:
        return
    row.ended_at = now()
    row.ended_reason = reason[:200]
    logger.info("Token %s: ended (%s)", row.id, reason)
    if not revoke:
        return
    try:
        twitch().revoke(current_app.extensions["token_box"].open(row.access_token))
    except (TwitchError, UnreadableToken) as e:
        logger.warning("Token %s: could not be revoked: %s", row.id, type(e).__name__)
