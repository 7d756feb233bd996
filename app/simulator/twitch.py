"""The simulator playing Twitch's OAuth server and the Helix calls we use.

Mounted at ``/simulator/twitch`` when the simulator is on and no real
Twitch client id is set, so the very same authlib sign-in and Helix client
run locally: ``TWITCH_AUTH_BASE_URL`` points at this blueprint and
``TWITCH_API_BASE_URL`` at its ``/helix``. It follows
https://dev.twitch.tv/docs/authentication/ closely enough for that code:
OpenID discovery and keys, authorize with a consent page listing demo
accounts, the code, refresh and client-credentials grants, validate and
revoke, and Helix Get Users and Get Moderated Channels.

Tokens are signed, not stored: each names its user, scopes, grant and
expiry, so they survive a restart of the app. Revoked grants and used
codes are remembered by this process only. ``POST /_control`` lets tests
make Helix fail or revoke a user's grants, as Twitch would on an outage
or when a user disconnects the app.
"""

import collections
import functools
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint
from flask import current_app
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from itsdangerous import BadSignature
from itsdangerous import URLSafeSerializer
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwk import RSAKey

from app.simulator.messages import CAST
from app.simulator.messages import MODERATOR
from app.simulator.messages import STREAMERS
from app.simulator.messages import VIEWERS

logger = logging.getLogger(__name__)

bp = Blueprint("twitch_simulator", __name__)

ACCESS_SECONDS = 4 * 3600
CODE_SECONDS = 120
ID_TOKEN_SECONDS = 900
APP_TOKEN_SECONDS = 5_000_000
# Who can sign in on the consent page, and what each one plays.
DEMO_ACCOUNTS = (
    (VIEWERS[0], "a viewer"),
    (VIEWERS[1], "a viewer with a display name in Japanese"),
    (STREAMERS[0], "the streamer of a simulated channel"),
    (MODERATOR, f"a moderator of {STREAMERS[0].login}"),
)
MODERATES = {MODERATOR.id: (STREAMERS[0],)}


@functools.cache
def signing_key() -> RSAKey:
    """The key ID tokens are signed with, made once per process."""
    return RSAKey.generate_key(2048, parameters={"kid": "sim-1"})


@dataclass
class SimulatedTwitch:
    """What the simulator remembers: its signing keys and revocations."""

    secret: str
    revoked_grants: set[str] = field(default_factory=set)
    revoked_users: dict[str, float] = field(default_factory=dict)
    used_codes: set[str] = field(default_factory=set)
    helix_failure: int | None = None
    # How many of the next Helix calls fail with a 503 (then they work).
    helix_failures: int = 0
    rate_limited: int = 0
    # EventSub (app/simulator/eventsub_api.py): who granted which scopes,
    # the subscriptions by id in creation order, the page size of a list,
    # and the cost limit.
    grants: dict[str, set[str]] = field(default_factory=dict)
    subscriptions: dict[str, dict] = field(default_factory=dict)
    page_size: int = 100
    max_total_cost: int = 10_000
    # (endpoint, time, status) of each Helix call that was refused.
    refusals: list = field(default_factory=list)
    # (endpoint, time) of each call, so tests can check waits.
    call_times: list = field(default_factory=list)
    # Calls per endpoint, so tests can see what reached "Twitch".
    calls: collections.Counter = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serializer(self, kind: str) -> URLSafeSerializer:
        return URLSafeSerializer(self.secret, salt=f"simulated-twitch-{kind}")


def init_app(app) -> None:
    app.extensions["twitch_simulator"] = SimulatedTwitch(app.config["SECRET_KEY"])


def state() -> SimulatedTwitch:
    return current_app.extensions["twitch_simulator"]


def issuer() -> str:
    return f"{current_app.config['TWITCH_AUTH_BASE_URL']}/oauth2"


def oauth_error(status: int, message: str):
    return jsonify(status=status, message=message), status


# OpenID Connect discovery


@bp.get("/oauth2/.well-known/openid-configuration")
def discovery():
    """Where the endpoints are, as Twitch's discovery document says."""
    base = issuer()
    return jsonify(
        issuer=base,
        authorization_endpoint=f"{base}/authorize",
        token_endpoint=f"{base}/token",
        userinfo_endpoint=f"{base}/userinfo",
        jwks_uri=f"{base}/keys",
        response_types_supported=["code", "id_token", "token"],
        subject_types_supported=["public"],
        id_token_signing_alg_values_supported=["RS256"],
        scopes_supported=["openid"],
        token_endpoint_auth_methods_supported=["client_secret_post"],
        claims_supported=["aud", "exp", "iat", "iss", "sub", "preferred_username"],
    )


@bp.get("/oauth2/keys")
def keys():
    return jsonify(KeySet([signing_key()]).as_dict(private=False))


# Authorize: the consent page


@bp.get("/oauth2/authorize")
def authorize():
    """Show the demo accounts, as Twitch shows its sign-in and consent."""
    problem = check_authorize_request(request.args)
    if problem:
        return problem
    return render_template(
        "simulator/authorize.html",
        accounts=DEMO_ACCOUNTS,
        params=request.args,
        scopes=request.args.get("scope", "").split(),
    )


@bp.post("/oauth2/authorize")
def decide():
    """Send the browser back with a code, or with access_denied."""
    params = request.form
    problem = check_authorize_request(params)
    if problem:
        return problem

    back = {"state": params.get("state", "")}
    person = CAST.get(params.get("account", ""))
    if params.get("decision") != "allow" or person is None:
        back |= {
            "error": "access_denied",
            "error_description": "The user denied you access",
        }
        return redirect(f"{params['redirect_uri']}?{urlencode(back)}")

    code = (
        state()
        .serializer("code")
        .dumps(
            {
                "user": person.id,
                "scopes": params.get("scope", "").split(),
                "redirect_uri": params["redirect_uri"],
                "nonce": params.get("nonce"),
                "exp": time.time() + CODE_SECONDS,
                "jti": secrets.token_hex(8),
            }
        )
    )
    back |= {"code": code, "scope": params.get("scope", "")}
    return redirect(f"{params['redirect_uri']}?{urlencode(back)}")


def check_authorize_request(params):
    if params.get("client_id") != current_app.config["TWITCH_CLIENT_ID"]:
        return oauth_error(400, "invalid client")
    if params.get("response_type") != "code":
        return oauth_error(400, "unsupported response_type")
    if not params.get("redirect_uri", "").startswith(("http://", "https://")):
        return oauth_error(400, "Parameter redirect_uri does not match registered URI")
    return None


# Tokens


@bp.post("/oauth2/token")
def token():
    """The authorization code, refresh token and client credentials grants."""
    form = request.form
    config = current_app.config
    if (form.get("client_id"), form.get("client_secret")) != (
        config["TWITCH_CLIENT_ID"],
        config["TWITCH_CLIENT_SECRET"],
    ):
        return oauth_error(403, "invalid client secret")

    grant = form.get("grant_type")
    if grant == "client_credentials":
        return jsonify(
            access_token=sign_token("app", None, [], APP_TOKEN_SECONDS, "app"),
            expires_in=APP_TOKEN_SECONDS,
            token_type="bearer",
        )
    if grant == "authorization_code":
        return trade_code(form)
    if grant == "refresh_token":
        return trade_refresh(form.get("refresh_token", ""))
    return oauth_error(400, "unsupported grant_type")


def trade_code(form):
    claims = read(state().serializer("code"), form.get("code", ""))
    if claims is None or claims["exp"] < time.time():
        return oauth_error(400, "Invalid authorization code")
    if claims["redirect_uri"] != form.get("redirect_uri"):
        return oauth_error(400, "Parameter redirect_uri does not match registered URI")
    with state().lock:
        if claims["jti"] in state().used_codes:
            return oauth_error(400, "Invalid authorization code")
        state().used_codes.add(claims["jti"])

    grant = secrets.token_hex(8)
    with state().lock:
        state().grants.setdefault(claims["user"], set()).update(claims["scopes"])
    body = token_pair(claims["user"], claims["scopes"], grant)
    if "openid" in claims["scopes"]:
        body["id_token"] = id_token(claims["user"], claims.get("nonce"))
    return jsonify(body)


def trade_refresh(refresh_token: str):
    claims = read(state().serializer("refresh"), refresh_token)
    if claims is None or not grant_alive(claims):
        return oauth_error(400, "Invalid refresh token")
    return jsonify(token_pair(claims["user"], claims["scopes"], claims["grant"]))


def token_pair(user_id: str, scopes: list[str], grant: str) -> dict[str, Any]:
    refresh = (
        state()
        .serializer("refresh")
        .dumps({"user": user_id, "scopes": scopes, "grant": grant, "iat": time.time()})
    )
    return {
        "access_token": sign_token("user", user_id, scopes, ACCESS_SECONDS, grant),
        "refresh_token": refresh,
        "expires_in": ACCESS_SECONDS,
        "scope": scopes,
        "token_type": "bearer",
    }


def sign_token(kind: str, user_id, scopes, lifetime: int, grant: str) -> str:
    return (
        state()
        .serializer("access")
        .dumps(
            {
                "kind": kind,
                "user": user_id,
                "scopes": scopes,
                "grant": grant,
                "iat": time.time(),
                "exp": time.time() + lifetime,
            }
        )
    )


def id_token(user_id: str, nonce: str | None) -> str:
    person = person_by_id(user_id)
    now = int(time.time())
    claims = {
        "iss": issuer(),
        "aud": current_app.config["TWITCH_CLIENT_ID"],
        "sub": user_id,
        "iat": now,
        "exp": now + ID_TOKEN_SECONDS,
        "preferred_username": person.name if person else user_id,
    }
    if nonce:
        claims["nonce"] = nonce
    header = {"alg": "RS256", "kid": signing_key().kid}
    return jwt.encode(header, claims, signing_key())


def read(serializer: URLSafeSerializer, value: str) -> dict[str, Any] | None:
    try:
        claims = serializer.loads(value)
    except BadSignature:
        return None
    return claims if isinstance(claims, dict) else None


def grant_alive(claims: dict[str, Any]) -> bool:
    if claims.get("grant") in state().revoked_grants:
        return False
    revoked_at = state().revoked_users.get(claims.get("user") or "")
    return revoked_at is None or claims.get("iat", 0) > revoked_at


def token_claims(token: str) -> dict[str, Any] | None:
    """The claims of a live access token, or None."""
    claims = read(state().serializer("access"), token)
    if claims is None or claims["exp"] < time.time() or not grant_alive(claims):
        return None
    return claims


@bp.get("/oauth2/validate")
def validate():
    count_call()
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    claims = token_claims(value) if scheme in ("OAuth", "Bearer") else None
    if claims is None:
        return oauth_error(401, "invalid access token")

    body = {
        "client_id": current_app.config["TWITCH_CLIENT_ID"],
        "scopes": claims["scopes"],
        "expires_in": int(claims["exp"] - time.time()),
    }
    person = person_by_id(claims["user"]) if claims["user"] else None
    if person:
        body |= {"login": person.login, "user_id": person.id}
    return jsonify(body)


@bp.post("/oauth2/revoke")
def revoke():
    if request.form.get("client_id") != current_app.config["TWITCH_CLIENT_ID"]:
        return oauth_error(404, "client does not exist")
    claims = read(state().serializer("access"), request.form.get("token", ""))
    if claims is None:
        return oauth_error(400, "Invalid token")
    with state().lock:
        state().revoked_grants.add(claims["grant"])
    return "", 200


# Helix


def count_call() -> None:
    endpoint = request.endpoint.rpartition(".")[2]
    with state().lock:
        state().calls[endpoint] += 1
        state().call_times.append((endpoint, time.time()))


def helix_caller():
    """Check a Helix call's token and client id, as Twitch does; or refuse."""
    count_call()
    endpoint = request.endpoint.rpartition(".")[2]
    if state().helix_failure:
        return None, oauth_error(state().helix_failure, "Service unavailable")
    if state().helix_failures > 0:
        with state().lock:
            state().helix_failures -= 1
            state().refusals.append((endpoint, time.time(), 503, None))
        return None, oauth_error(503, "Service unavailable")
    if state().rate_limited > 0:
        reset = int(time.time()) + 1
        with state().lock:
            state().rate_limited -= 1
            state().refusals.append((endpoint, time.time(), 429, reset))
        response = oauth_error(429, "Too Many Requests")
        response[0].headers["Ratelimit-Limit"] = "800"
        response[0].headers["Ratelimit-Remaining"] = "0"
        response[0].headers["Ratelimit-Reset"] = str(reset)
        return None, response

    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    claims = token_claims(value) if scheme == "Bearer" else None
    if claims is None:
        return None, oauth_error(401, "Invalid OAuth token")
    if request.headers.get("Client-Id") != current_app.config["TWITCH_CLIENT_ID"]:
        return None, oauth_error(401, "Client ID and OAuth token do not match")
    return claims, None


@bp.get("/helix/users")
def users():
    claims, refused = helix_caller()
    if refused:
        return refused

    logins = request.args.getlist("login")
    ids = request.args.getlist("id")
    if len(logins) + len(ids) > 100:
        return oauth_error(400, "too many ids and logins, the most is 100")
    if not logins and not ids:
        if claims["kind"] != "user":
            return oauth_error(400, "Missing User OAUTH Token")
        ids = [claims["user"]]

    found = [p for p in CAST.values() if p.login in logins or p.id in ids]
    return jsonify(data=[helix_user(person) for person in found])


@bp.get("/helix/moderation/channels")
def moderated_channels():
    claims, refused = helix_caller()
    if refused:
        return refused
    if claims["kind"] != "user" or claims["user"] != request.args.get("user_id"):
        return oauth_error(401, "The ID in user_id must match the user in the token")
    if "user:read:moderated_channels" not in claims["scopes"]:
        return oauth_error(401, "Missing scope: user:read:moderated_channels")

    channels = MODERATES.get(claims["user"], ())
    data = [
        {
            "broadcaster_id": c.id,
            "broadcaster_login": c.login,
            "broadcaster_name": c.name,
        }
        for c in channels
    ]
    return jsonify(data=data, pagination={})


def helix_user(person) -> dict[str, Any]:
    return {
        "id": person.id,
        "login": person.login,
        "display_name": person.name,
        "type": "",
        "broadcaster_type": "affiliate" if person in STREAMERS else "",
        "description": "",
        "profile_image_url": "",
        "offline_image_url": "",
        "created_at": "2020-01-01T00:00:00Z",
    }


def person_by_id(user_id: str):
    return next((p for p in CAST.values() if p.id == user_id), None)


# Control, for tests and demos


@bp.get("/_control")
def calls():
    """How many calls each endpoint had, when, which were refused, and the
    EventSub subscriptions."""
    from app.simulator.eventsub_api import public

    return jsonify(
        calls=dict(state().calls),
        call_times=state().call_times,
        refusals=state().refusals,
        subscriptions=[public(s) for s in state().subscriptions.values()],
    )


@bp.post("/_control")
def control():
    """Make Helix fail (``helix_failure``: a status, or null; or the next
    ``helix_failures`` calls with 503), rate limit the next ``rate_limited``
    calls, or revoke every grant of ``revoke_user`` (and the subscriptions
    that rest on it). The EventSub controls are in ``eventsub_api``."""
    from app.simulator.eventsub_api import control_eventsub
    from app.simulator.eventsub_api import revoke_user_subscriptions

    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return oauth_error(400, "a JSON object is expected")
    person = CAST.get(str(body.get("revoke_user", "")))
    with state().lock:
        if "helix_failure" in body:
            state().helix_failure = body["helix_failure"] or None
        if "helix_failures" in body:
            state().helix_failures = int(body["helix_failures"] or 0)
        if "rate_limited" in body:
            state().rate_limited = int(body["rate_limited"] or 0)
        if person is not None:
            state().revoked_users[person.id] = time.time()
            state().grants.pop(person.id, None)
    if person is not None:
        revoke_user_subscriptions(person.id)
    eventsub = control_eventsub(body)
    return jsonify(
        helix_failure=state().helix_failure,
        rate_limited=state().rate_limited,
        **eventsub,
    )


# The EventSub endpoints live in their own module, on this blueprint.
from app.simulator import eventsub_api  # noqa: E402,F401
