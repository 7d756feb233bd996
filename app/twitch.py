"""One client for every call to Twitch: its OAuth server and Helix.

Every call has timeouts, is retried on connection errors and 5xx answers
with a short backoff, waits on 429 until ``Ratelimit-Reset`` (Twitch's
token bucket, https://dev.twitch.tv/docs/api/guide/#twitch-rate-limits),
and logs one line when it fails, naming the endpoint and the status, never
a token. A Helix 401 with the app token gets a fresh app token; with a user
token the caller's ``refresh`` is asked for a new one.
"""

import logging
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import urlsplit

import requests
from cachelib import BaseCache
from flask import current_app

logger = logging.getLogger(__name__)

TIMEOUT = (3.05, 10)
RETRIES = 2
BACKOFF_SECONDS = 0.25
# Tokens are taken for fresh until this long before Twitch says they expire.
EXPIRY_MARGIN_SECONDS = 300
USER_CACHE_SECONDS = 3600
UNKNOWN_USER_CACHE_SECONDS = 300


class TwitchError(RuntimeError):
    """Twitch could not be reached, or did not do what was asked."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TwitchUnauthorized(TwitchError):
    """Twitch refused the token (401), and no fresh one could be had."""


@dataclass
class Twitch:
    auth_base: str
    api_base: str
    client_id: str
    client_secret: str
    cache: BaseCache
    max_wait: float = 10.0
    http: requests.Session = field(default_factory=requests.Session)

    # The OAuth server (id.twitch.tv)

    def validate(self, access_token: str) -> dict[str, Any] | None:
        """Return what Twitch knows of a user token, or None if it is invalid."""
        response = self.send(
            "GET",
            f"{self.auth_base}/oauth2/validate",
            headers={"Authorization": f"OAuth {access_token}"},
        )
        if response.status_code == 401:
            return None
        return self.json_of(response, "validate")

    def refresh(self, refresh_token: str) -> dict[str, Any] | None:
        """Trade a refresh token for new tokens, or None if Twitch refuses it."""
        response = self.send(
            "POST",
            f"{self.auth_base}/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )
        if response.status_code in (400, 401):
            return None
        return self.json_of(response, "refresh")

    def revoke(self, token: str) -> None:
        """Withdraw a token; one Twitch no longer knows counts as withdrawn."""
        response = self.send(
            "POST",
            f"{self.auth_base}/oauth2/revoke",
            data={"client_id": self.client_id, "token": token},
        )
        if response.status_code not in (200, 400):
            self.fail(response, "revoke")

    def app_token(self, fresh: bool = False) -> str:
        """The app access token (client credentials), cached until near expiry."""
        key = f"twitch:app-token:{self.client_id}"
        token = None if fresh else self.cache.get(key)
        if token:
            return token

        response = self.send(
            "POST",
            f"{self.auth_base}/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )
        body = self.json_of(response, "app token")
        lifetime = int(body.get("expires_in") or 3600)
        self.cache.set(
            key, body["access_token"], max(60, lifetime - EXPIRY_MARGIN_SECONDS)
        )
        return body["access_token"]

    # Helix

    def helix(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        user_token: str | None = None,
        refresh: Callable[[], str | None] | None = None,
    ) -> requests.Response:
        """Call Helix with the app token, or with ``user_token`` when given.

        Raises ``TwitchUnauthorized`` when the token is refused and no fresh
        one can be had, ``TwitchError`` when Twitch cannot be reached.
        """
        token = user_token or self.app_token()
        response = self.send_helix(method, path, token, params, json)
        if response.status_code != 401:
            return response

        if user_token is None:
            token = self.app_token(fresh=True)
        else:
            token = refresh() if refresh else None
        if token is None:
            raise TwitchUnauthorized(f"Helix {path}: token refused", 401)
        response = self.send_helix(method, path, token, params, json)
        if response.status_code == 401:
            raise TwitchUnauthorized(f"Helix {path}: token refused", 401)
        return response

    def send_helix(self, method, path, token, params, json) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Client-Id": self.client_id}
        url = f"{self.api_base}{path}"
        return self.send(method, url, params=params, json=json, headers=headers)

    def get_users(
        self, logins: tuple[str, ...] = (), ids: tuple[str, ...] = (), **kwargs
    ) -> list[dict[str, Any]]:
        """Look up to 100 users by login and id; no arguments: the token's user."""
        params = [("login", login) for login in logins] + [("id", i) for i in ids]
        response = self.helix("GET", "/users", params=params, **kwargs)
        return self.json_of(response, "users").get("data") or []

    def find_user(self, login: str) -> dict[str, Any] | None:
        """One user by login, or None if Twitch has no such user; cached."""
        key = f"twitch:user:{login}"
        cached = self.cache.get(key)
        if cached is not None:
            return cached or None

        users = self.get_users(logins=(login,))
        user = users[0] if users else None
        lifetime = USER_CACHE_SECONDS if user else UNKNOWN_USER_CACHE_SECONDS
        self.cache.set(key, user or {}, lifetime)
        return user

    def moderated_channels(self, user_id: str, user_token: str) -> list[dict[str, Any]]:
        """The channels a user moderates, every page.

        Only with a token just issued at sign-in, so no refresh: a refresh
        part-way would leave the later pages asking with the old token.
        """
        channels, after = [], None
        for _ in range(100):
            params = {"user_id": user_id, "first": 100}
            if after:
                params["after"] = after
            response = self.helix(
                "GET", "/moderation/channels", params=params, user_token=user_token
            )
            body = self.json_of(response, "moderated channels")
            channels.extend(body.get("data") or [])
            after = (body.get("pagination") or {}).get("cursor")
            if not after:
                break
        return channels

    # EventSub subscriptions (always with the app token)

    def create_subscription(self, body: dict[str, Any]) -> requests.Response:
        """POST one subscription; the caller reads 202, 409, 403 and the rest."""
        return self.helix("POST", "/eventsub/subscriptions", json=body)

    def subscription_pages(self, **filters) -> Iterator[dict[str, Any]]:
        """Every page of Get EventSub Subscriptions, following the cursor."""
        after = None
        for _ in range(10_000):
            params = dict(filters)
            if after:
                params["after"] = after
            response = self.helix("GET", "/eventsub/subscriptions", params=params)
            body = self.json_of(response, "list subscriptions")
            yield body
            after = (body.get("pagination") or {}).get("cursor")
            if not after:
                return

    def delete_subscription(self, subscription_id: str) -> bool:
        """Delete a subscription; False if Twitch no longer had it (404)."""
        response = self.helix(
            "DELETE", "/eventsub/subscriptions", params={"id": subscription_id}
        )
        if response.status_code == 404:
            return False
        if response.status_code != 204:
            self.fail(response, "delete subscription")
        return True

    def channel_followers(
        self,
        broadcaster_id: str,
        user_token: str,
        refresh: Callable[[], str | None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every follower of a channel, newest first, page after page (needs a
        user token with moderator:read:followers for that channel). A token
        refreshed on a 401 is used for the pages after it."""
        token = {"value": user_token}

        def renewed() -> str | None:
            fresh = refresh() if refresh else None
            if fresh:
                token["value"] = fresh
            return fresh

        after = None
        for _ in range(100_000):
            params = {"broadcaster_id": broadcaster_id, "first": 100}
            if after:
                params["after"] = after
            response = self.helix(
                "GET",
                "/channels/followers",
                params=params,
                user_token=token["value"],
                refresh=renewed,
            )
            body = self.json_of(response, "channel followers")
            yield from body.get("data") or []
            after = (body.get("pagination") or {}).get("cursor")
            if not after:
                return

    # Transport

    def send(self, method: str, url: str, **kwargs) -> requests.Response:
        """One call, retried on connection errors, 5xx and 429."""
        endpoint = f"{method} {urlsplit(url).path}"
        for attempt in range(RETRIES + 1):
            last = attempt == RETRIES
            try:
                response = self.http.request(method, url, timeout=TIMEOUT, **kwargs)
            except requests.RequestException as e:
                logger.warning("Twitch %s: %s", endpoint, type(e).__name__)
                if last:
                    raise TwitchError(f"Twitch {endpoint}: unreachable") from e
                time.sleep(BACKOFF_SECONDS * 2**attempt)
                continue

            if response.status_code >= 400:
                # One line per failed attempt: the endpoint and the status,
                # never a token, a parameter or a body.
                logger.warning("Twitch %s: answered %s", endpoint, response.status_code)
            if response.status_code == 429 and not last:
                wait = self.rate_limit_wait(response)
                logger.info("Twitch %s: waiting %.1f s for the bucket", endpoint, wait)
                time.sleep(wait)
                continue
            if response.status_code >= 500 and not last:
                time.sleep(BACKOFF_SECONDS * 2**attempt)
                continue
            return response
        raise AssertionError("unreachable")

    def rate_limit_wait(self, response: requests.Response) -> float:
        """Seconds until the bucket refills, from Ratelimit-Reset (epoch)."""
        try:
            reset = float(response.headers.get("Ratelimit-Reset", ""))
        except ValueError:
            return 1.0
        return min(self.max_wait, max(0.0, reset - time.time()))

    def json_of(self, response: requests.Response, what: str) -> dict[str, Any]:
        if not response.ok:
            self.fail(response, what)
        try:
            body = response.json()
        except ValueError as e:
            raise TwitchError(f"Twitch {what}: answer is not JSON") from e
        if not isinstance(body, dict):
            raise TwitchError(f"Twitch {what}: answer is not a JSON object")
        return body

    def fail(self, response: requests.Response, what: str):
        status = response.status_code
        logger.warning("Twitch %s: failed with %s", what, status)
        if status == 401:
            raise TwitchUnauthorized(f"Twitch {what}: token refused", status)
        raise TwitchError(f"Twitch {what}: answered {status}", status)


def init_app(app) -> None:
    """Bind one client to the app, with the configured base URLs and cache."""
    config = app.config
    app.extensions["twitch"] = Twitch(
        auth_base=config["TWITCH_AUTH_BASE_URL"],
        api_base=config["TWITCH_API_BASE_URL"],
        client_id=config["TWITCH_CLIENT_ID"] or "",
        client_secret=config["TWITCH_CLIENT_SECRET"] or "",
        cache=app.extensions["cache"],
    )


def twitch() -> Twitch:
    """The current app's Twitch client."""
    return current_app.extensions["twitch"]
