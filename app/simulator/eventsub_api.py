"""The simulator playing Helix's EventSub subscription endpoints and followers.

Registered on the simulator's blueprint (``app.simulator.twitch``), so the
jobs in ``jobs/`` create, list and delete subscriptions against it exactly
as against Twitch
(https://dev.twitch.tv/docs/api/reference/#create-eventsub-subscription):

- create answers 202 with the subscription pending, then sends the
  challenge to the callback, signed with the subscription's own secret;
  the subscription is enabled once the callback echoes the challenge;
- 409 for a live duplicate (same type, version, condition and callback),
  403 when the user in the condition has not granted the type's scope,
  429 past the maximum total cost or when told to rate limit;
- the cost is 0 when the user in the condition has authorised the app,
  else 1, and every answer carries ``total``, ``total_cost`` and
  ``max_total_cost``;
- list pages through ``pagination.cursor`` (a page size the tests can
  shrink) with the ``status``, ``type``, ``user_id`` and
  ``subscription_id`` filters, one at a time;
- delete answers 204, or 404 for an unknown id.

``POST /_control`` grants scopes to a user (as a consent would), revokes a
subscription with a reason (delivering the revocation message or not),
deletes one behind the app's back, and sets the page size and the maximum.
``GET /helix/channels/followers`` gives each channel a fixed list of
followers, paged, to a user token with ``moderator:read:followers``.
"""

import json
import logging
import threading
import uuid
from typing import Any

import requests
from flask import current_app
from flask import jsonify
from flask import request

from app.catalogue import BY_TYPE
from app.simulator.messages import CAST
from app.simulator.messages import format_timestamp
from app.simulator.messages import now_timestamp
from app.simulator.twitch import MODERATES
from app.simulator.twitch import bp
from app.simulator.twitch import helix_caller
from app.simulator.twitch import oauth_error
from app.simulator.twitch import state
from webhooks.signature import sign

logger = logging.getLogger(__name__)

PENDING = "webhook_callback_verification_pending"
LIVE = ("enabled", PENDING)
USER_KEYS = (
    "broadcaster_user_id",
    "to_broadcaster_user_id",
    "from_broadcaster_user_id",
    "user_id",
)
FILTERS = ("status", "type", "user_id", "subscription_id")
FOLLOWERS_PER_CHANNEL = 7
# Types whose condition names a moderator (the broadcaster may be it).
MODERATED = ("channel.follow", "channel.shoutout.create", "channel.shoutout.receive")


# What a create needs


def needed_scopes(subscription_type: str) -> tuple[str, ...]:
    """The scopes any one of which authorises the type; empty if public."""
    feed_type = BY_TYPE.get(subscription_type)
    if feed_type is None or feed_type.scope is None:
        return ()
    return tuple(part.strip() for part in feed_type.scope.split(" or "))


def condition_problem(subscription_type: str, condition: dict) -> str | None:
    if subscription_type == "channel.raid":
        sides = ("to_broadcaster_user_id", "from_broadcaster_user_id")
        given = [k for k in sides if condition.get(k)]
        if len(given) != 1:
            return "channel.raid needs exactly one of to_ or from_broadcaster_user_id"
        return None
    if subscription_type == "user.update":
        return None if condition.get("user_id") else "condition needs user_id"
    if not condition.get("broadcaster_user_id"):
        return "condition needs broadcaster_user_id"
    if subscription_type in MODERATED and not condition.get("moderator_user_id"):
        return "condition needs moderator_user_id"
    return None


def authorising_user(condition: dict) -> str | None:
    """Whose consent a scoped subscription rests on."""
    return condition.get("moderator_user_id") or condition.get("broadcaster_user_id")


def condition_user(condition: dict) -> str | None:
    return next((str(condition[k]) for k in USER_KEYS if condition.get(k)), None)


def may_act_for(user_id: str, broadcaster_id: str | None) -> bool:
    if user_id == broadcaster_id:
        return True
    return any(c.id == broadcaster_id for c in MODERATES.get(user_id, ()))


def totals() -> dict[str, Any]:
    live = [s for s in state().subscriptions.values() if s["status"] in LIVE]
    return {
        "total": len(state().subscriptions),
        "total_cost": sum(s["cost"] for s in live),
        "max_total_cost": state().max_total_cost,
    }


def public(subscription: dict) -> dict:
    """A subscription as Helix shows it (the secret is never shown)."""
    shown = {k: v for k, v in subscription.items() if k != "secret"}
    shown["transport"] = {"method": "webhook", "callback": subscription["callback"]}
    del shown["callback"]
    return shown


# The endpoints


@bp.post("/helix/eventsub/subscriptions")
def create_subscription():
    claims, refused = helix_caller()
    if refused:
        return refused
    if claims["kind"] != "app":
        return oauth_error(401, "Invalid OAuth token: an app access token is needed")

    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return oauth_error(400, "The body must be a JSON object")
    kind, version = body.get("type"), body.get("version")
    condition = body.get("condition")
    transport = body.get("transport") or {}
    feed_type = BY_TYPE.get(kind)
    if feed_type is None or feed_type.version != version:
        return oauth_error(400, "invalid combination of subscription type and version")
    if not isinstance(condition, dict):
        return oauth_error(400, "condition is missing")
    problem = condition_problem(kind, condition)
    if problem:
        return oauth_error(400, problem)
    secret = transport.get("secret") or ""
    callback = transport.get("callback") or ""
    if transport.get("method") != "webhook" or not callback.startswith("http"):
        return oauth_error(400, "transport must be a webhook with a callback URL")
    if not (secret.isascii() and 10 <= len(secret) <= 100):
        return oauth_error(400, "secret must be between 10 and 100 characters")

    scopes = needed_scopes(kind)
    if scopes:
        user = authorising_user(condition)
        granted = state().grants.get(user, set())
        if not may_act_for(user, condition.get("broadcaster_user_id")) or not (
            granted & set(scopes)
        ):
            return oauth_error(403, "subscription missing proper authorization")

    condition = {k: str(v) for k, v in condition.items()}
    with state().lock:
        for existing in state().subscriptions.values():
            same = (existing["type"], existing["version"], existing["condition"])
            if (
                same == (kind, version, condition)
                and existing["callback"] == callback
                and existing["status"] in LIVE
            ):
                return oauth_error(409, "subscription already exists")
        cost = 0 if state().grants.get(condition_user(condition)) else 1
        if totals()["total_cost"] + cost > state().max_total_cost:
            return oauth_error(429, "maximum total cost exceeded")
        subscription = {
            "id": str(uuid.uuid4()),
            "status": PENDING,
            "type": kind,
            "version": version,
            "condition": condition,
            "created_at": now_timestamp(),
            "cost": cost,
            "callback": callback,
            "secret": secret,
        }
        state().subscriptions[subscription["id"]] = subscription

    # Twitch answers first, then sends the challenge.
    app = current_app._get_current_object()
    threading.Thread(target=verify, args=(app, subscription), daemon=True).start()
    return jsonify(data=[public(subscription)], **totals()), 202


@bp.get("/helix/eventsub/subscriptions")
def list_subscriptions():
    claims, refused = helix_caller()
    if refused:
        return refused
    if claims["kind"] != "app":
        return oauth_error(401, "Invalid OAuth token: an app access token is needed")
    given = [name for name in FILTERS if request.args.get(name)]
    if len(given) > 1:
        return oauth_error(400, "only one of status, type, user_id may be given")

    found = list(state().subscriptions.values())
    value = request.args.get(given[0]) if given else None
    if given == ["status"]:
        found = [s for s in found if s["status"] == value]
    elif given == ["type"]:
        found = [s for s in found if s["type"] == value]
    elif given == ["user_id"]:
        found = [s for s in found if value in s["condition"].values()]
    elif given == ["subscription_id"]:
        found = [s for s in found if s["id"] == value]

    start = int(request.args.get("after") or 0)
    size = state().page_size
    page = found[start : start + size]
    pagination = {"cursor": str(start + size)} if start + size < len(found) else {}
    return jsonify(data=[public(s) for s in page], pagination=pagination, **totals())


@bp.delete("/helix/eventsub/subscriptions")
def delete_subscription():
    claims, refused = helix_caller()
    if refused:
        return refused
    with state().lock:
        removed = state().subscriptions.pop(request.args.get("id", ""), None)
    if removed is None:
        return oauth_error(404, "subscription not found")
    return "", 204


@bp.get("/helix/channels/followers")
def followers():
    claims, refused = helix_caller()
    if refused:
        return refused
    broadcaster = request.args.get("broadcaster_id", "")
    everyone = channel_followers(broadcaster)
    allowed = (
        claims["kind"] == "user"
        and "moderator:read:followers" in claims["scopes"]
        and may_act_for(claims["user"], broadcaster)
    )
    if not allowed:
        return jsonify(data=[], total=len(everyone), pagination={})

    start = int(request.args.get("after") or 0)
    size = min(100, int(request.args.get("first") or 20), state().page_size)
    page = everyone[start : start + size]
    pagination = {"cursor": str(start + size)} if start + size < len(everyone) else {}
    return jsonify(data=page, total=len(everyone), pagination=pagination)


def channel_followers(broadcaster_id: str) -> list[dict[str, str]]:
    """A fixed list of followers, newest first, the same on every call."""
    viewers = [p for p in CAST.values() if p.id != broadcaster_id]
    base = 1_760_000_000 * 1_000_000_000
    return [
        {
            "user_id": person.id,
            "user_login": person.login,
            "user_name": person.name,
            "followed_at": format_timestamp(base - index * 86_400 * 1_000_000_000),
        }
        for index, person in enumerate(viewers[:FOLLOWERS_PER_CHANNEL])
    ]


# Deliveries to the callback


def deliver(
    subscription: dict, message_type: str, body: dict
) -> requests.Response | None:
    """POST one message to the subscription's callback, signed with its secret."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    message_id = str(uuid.uuid4())
    timestamp = now_timestamp()
    headers = {
        "Content-Type": "application/json",
        "Twitch-Eventsub-Message-Id": message_id,
        "Twitch-Eventsub-Message-Retry": "0",
        "Twitch-Eventsub-Message-Type": message_type,
        "Twitch-Eventsub-Message-Signature": sign(
            subscription["secret"], message_id, timestamp, raw
        ),
        "Twitch-Eventsub-Message-Timestamp": timestamp,
        "Twitch-Eventsub-Subscription-Type": subscription["type"],
        "Twitch-Eventsub-Subscription-Version": subscription["version"],
    }
    try:
        return requests.post(
            subscription["callback"], data=raw, headers=headers, timeout=10
        )
    except requests.RequestException as e:
        logger.warning("Simulated Twitch: callback unreachable: %s", type(e).__name__)
        return None


def verify(app, subscription: dict) -> None:
    """Send the challenge; enable the subscription if it comes back."""
    challenge = uuid.uuid4().hex
    with app.app_context():
        body = {"challenge": challenge, "subscription": public(subscription)}
        response = deliver(subscription, "webhook_callback_verification", body)
        answered = (
            response is not None
            and response.status_code == 200
            and response.text == challenge
        )
        with state().lock:
            current = state().subscriptions.get(subscription["id"])
            if current is not None and current["status"] == PENDING:
                current["status"] = (
                    "enabled" if answered else "webhook_callback_verification_failed"
                )


def revoke(subscription_id: str, reason: str, send: bool = True) -> bool:
    """End a subscription for ``reason``, telling the callback if ``send``."""
    with state().lock:
        subscription = state().subscriptions.get(subscription_id)
        if subscription is None:
            return False
        subscription["status"] = reason
    if send:
        deliver(subscription, "revocation", {"subscription": public(subscription)})
    return True


def control_eventsub(body: dict) -> dict[str, Any]:
    """The EventSub part of ``POST /_control``; see the module's docstring."""
    grant = body.get("grant")
    if isinstance(grant, dict):
        person = CAST.get(str(grant.get("user", "")))
        user_id = person.id if person else str(grant.get("user"))
        with state().lock:
            state().grants.setdefault(user_id, set()).update(grant.get("scopes") or [])
    if "page_size" in body:
        state().page_size = max(1, int(body["page_size"]))
    if "max_total_cost" in body:
        state().max_total_cost = int(body["max_total_cost"])
    if body.get("revoke_subscription"):
        revoke(
            str(body["revoke_subscription"]),
            str(body.get("reason") or "authorization_revoked"),
            bool(body.get("deliver", True)),
        )
    if body.get("delete_subscription"):
        with state().lock:
            state().subscriptions.pop(str(body["delete_subscription"]), None)
    return {"subscriptions": [public(s) for s in state().subscriptions.values()]}


def revoke_user_subscriptions(user_id: str) -> None:
    """A user who disconnects the app ends the scoped subscriptions on them."""
    for subscription in list(state().subscriptions.values()):
        scoped = needed_scopes(subscription["type"])
        if scoped and authorising_user(subscription["condition"]) == user_id:
            revoke(subscription["id"], "authorization_revoked")


def seed_runner_subscriptions(app) -> int:
    """Make the subscriptions the simulator's runner plays known to Helix.

    ``cli.py run`` starts the runner (``app.simulator.runner``), which
    verifies and then uses made-up subscriptions of the sample channels.
    Listing them here, as enabled and for this app's callback, lets the
    reconcile see them as Twitch would instead of forgetting them. The
    runner treats ``example_streamer`` as connected, so its grant is given.
    """
    from app.simulator.messages import STREAMERS
    from app.simulator.messages import UNCONNECTED_STREAMERS
    from app.simulator.messages import build_verification
    from app.simulator.runner import Simulator

    config = app.config
    runner = Simulator(config["EVENTSUB_CALLBACK_URL"], config["EVENTSUB_SECRET"])
    with app.app_context(), state().lock:
        for person in STREAMERS:
            if person.login not in UNCONNECTED_STREAMERS:
                state().grants.setdefault(person.id, set()).update(
                    {s for t in BY_TYPE.values() for s in needed_scopes(t.type)}
                )
        for person in STREAMERS:
            for kind in runner.types_for(person.login):
                body = json.loads(build_verification(kind, person.login).body)
                subscription = body["subscription"]
                condition = {k: str(v) for k, v in subscription["condition"].items()}
                state().subscriptions[subscription["id"]] = {
                    "id": subscription["id"],
                    "status": "enabled",
                    "type": kind,
                    "version": subscription["version"],
                    "condition": condition,
                    "created_at": subscription["created_at"],
                    "cost": 0 if state().grants.get(condition_user(condition)) else 1,
                    "callback": config["EVENTSUB_CALLBACK_URL"],
                    "secret": config["EVENTSUB_SECRET"],
                }
        return len(state().subscriptions)
