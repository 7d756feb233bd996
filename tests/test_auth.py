"""Sign-in with Twitch through the simulator, sessions, and the favorite.

Every test runs the app over real HTTP (``twitch_server``), with its
simulator playing Twitch's OAuth server and Helix, on SQLite and on
Postgres. The client is a ``requests.Session``, which keeps cookies as a
browser does.
"""

import html
import logging
import os
import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
import redis
import requests
import sqlalchemy as sa
import time_machine

from app.models import TwitchToken
from app.models import User

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def consent_form(page: str) -> dict[str, str]:
    """The hidden fields of the simulator's first (allow) form."""
    first = page.split("</form>")[0]
    return {name: html.unescape(value) for name, value in HIDDEN.findall(first)}


def sign_in(http, url: str, account="viewer_one", deny=False, **params):
    """Go through the simulator's consent page as ``account``; return the end."""
    page = http.get(f"{url}/auth/login/twitch", params=params)
    assert page.status_code == 200, page.text
    form = consent_form(page.text) | {"account": account}
    if deny:
        form["decision"] = "deny"
    return http.post(f"{url}/simulator/twitch/oauth2/authorize", data=form)


def csrf_token(http, url: str) -> str:
    return CSRF.search(http.get(f"{url}/").text).group(1)


def choose_favorite(http, url: str, login: str, **kwargs) -> requests.Response:
    data = {"login": login, "csrf_token": csrf_token(http, url)}
    return http.post(f"{url}/favorite", data=data, **kwargs)


def signed_in_as(http, url: str) -> str | None:
    found = re.search(r'class="account-name">([^<]*)<', http.get(f"{url}/").text)
    return html.unescape(found.group(1)) if found else None


def calls(url: str) -> dict[str, int]:
    return requests.get(f"{url}/simulator/twitch/_control").json()["calls"]


def control(url: str, **body) -> None:
    requests.post(f"{url}/simulator/twitch/_control", json=body).raise_for_status()


def rows(server, model):
    with server.app.app_context():
        session = server.app.extensions["db"].session()
        return session.scalars(sa.select(model)).all()


def later(**delta):
    return time_machine.travel(datetime.now(UTC) + timedelta(**delta), tick=True)


# Signing in and out


def test_sign_in_shows_the_viewer_and_asks_for_a_favorite(twitch_server):
    http = requests.Session()
    end = sign_in(http, twitch_server.url)
    assert end.url == f"{twitch_server.url}/", end.text
    assert signed_in_as(http, twitch_server.url) == "Viewer_One"
    assert "Your favorite streamer" in end.text


def test_sign_in_asks_twitch_for_openid_and_nothing_more(twitch_server):
    page = requests.get(f"{twitch_server.url}/auth/login/twitch")
    assert consent_form(page.text)["scope"] == "openid"


def test_the_session_id_changes_at_sign_in(twitch_server):
    http = requests.Session()
    http.get(f"{twitch_server.url}/auth/login/twitch")
    before = http.cookies["streamfeed_session"]
    sign_in(http, twitch_server.url)
    assert http.cookies["streamfeed_session"] != before


def test_session_cookie_is_httponly_and_lax_and_not_secure_over_http(twitch_server):
    http = requests.Session()
    end = sign_in(http, twitch_server.url)
    header = end.history[-1].headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header
    assert "Secure" not in header


@pytest.mark.settings(TRUSTED_PROXIES=1)
def test_session_cookie_is_secure_when_served_over_https(twitch_server):
    http = requests.Session()
    http.headers["X-Forwarded-Proto"] = "https"
    page = http.get(f"{twitch_server.url}/auth/login/twitch", allow_redirects=False)
    assert "Secure" in page.headers["Set-Cookie"]


def test_sign_out_ends_the_session_on_the_server(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    stolen = http.cookies["streamfeed_session"]
    data = {"csrf_token": csrf_token(http, twitch_server.url)}
    http.post(f"{twitch_server.url}/auth/logout", data=data)

    replay = requests.Session()
    replay.cookies.set("streamfeed_session", stolen)
    assert signed_in_as(http, twitch_server.url) is None
    assert signed_in_as(replay, twitch_server.url) is None


def test_sign_out_withdraws_the_token_at_twitch(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    data = {"csrf_token": csrf_token(http, twitch_server.url)}
    http.post(f"{twitch_server.url}/auth/logout", data=data)
    (token,) = rows(twitch_server, TwitchToken)
    access = twitch_server.app.extensions["token_box"].open(token.access_token)
    answer = requests.get(
        f"{twitch_server.url}/simulator/twitch/oauth2/validate",
        headers={"Authorization": f"OAuth {access}"},
    )
    assert token.ended_reason == "signed out"
    assert answer.status_code == 401


def test_sign_out_needs_a_csrf_token(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    refused = http.post(f"{twitch_server.url}/auth/logout")
    assert refused.status_code == 400, refused.text
    assert signed_in_as(http, twitch_server.url) == "Viewer_One"


# What can go wrong on the way


def test_a_denied_consent_says_so_and_offers_to_try_again(twitch_server):
    end = sign_in(requests.Session(), twitch_server.url, deny=True)
    assert end.status_code == 400
    assert "You did not allow streamfeed on Twitch." in end.text
    assert "<h1>Sign-in did not finish</h1>" in end.text
    assert "Try again with Twitch" in end.text


def test_a_forged_state_is_refused_with_a_page_not_a_500(twitch_server):
    http = requests.Session()
    page = http.get(f"{twitch_server.url}/auth/login/twitch")
    form = consent_form(page.text) | {"account": "viewer_one", "state": "forged"}
    end = http.post(f"{twitch_server.url}/simulator/twitch/oauth2/authorize", data=form)
    assert end.status_code == 400, end.text
    assert "expired or was not started here" in end.text
    assert signed_in_as(http, twitch_server.url) is None


def test_a_callback_without_a_sign_in_started_is_refused(twitch_server):
    end = requests.get(f"{twitch_server.url}/auth/callback/twitch?code=x&state=y")
    assert end.status_code == 400, end.text
    assert "Try again with Twitch" in end.text


def test_an_unconfigured_provider_is_a_404(twitch_server):
    assert requests.get(f"{twitch_server.url}/auth/login/github").status_code == 404
    assert requests.get(f"{twitch_server.url}/auth/login/evil").status_code == 404


@pytest.mark.parametrize(
    "target",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "watch/x", "/\t/x"],
    ids=["scheme-relative", "absolute", "backslash", "relative", "control-char"],
)
def test_next_outside_this_site_is_ignored(twitch_server, target):
    end = sign_in(requests.Session(), twitch_server.url, next=target)
    assert end.url == f"{twitch_server.url}/"


def test_next_inside_this_site_is_where_sign_in_lands(twitch_server):
    end = sign_in(requests.Session(), twitch_server.url, next="/stats/example_streamer")
    assert end.url == f"{twitch_server.url}/stats/example_streamer"


# The favorite streamer


def test_a_favorite_is_saved_and_its_watch_page_opens(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    page = choose_favorite(http, twitch_server.url, "Example_Streamer")
    assert page.url == f"{twitch_server.url}/watch/example_streamer"
    (user,) = rows(twitch_server, User)
    assert (user.favorite_login, user.favorite_id) == ("example_streamer", "1000001")


def test_next_sign_in_goes_straight_to_the_favorite(twitch_server):
    first = requests.Session()
    sign_in(first, twitch_server.url)
    choose_favorite(first, twitch_server.url, "other_streamer")
    end = sign_in(requests.Session(), twitch_server.url)
    assert end.url == f"{twitch_server.url}/watch/other_streamer"


def test_an_unknown_streamer_is_named_on_the_page(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    page = choose_favorite(http, twitch_server.url, "nobody_streams_here")
    assert page.status_code == 404
    assert "There is no Twitch channel named nobody_streams_here." in page.text


def test_a_badly_formed_login_gets_the_rule(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    page = choose_favorite(http, twitch_server.url, "<b>no</b>")
    assert page.status_code == 400
    assert "4 to 25 letters, digits or underscores" in page.text
    assert "<b>no</b>" not in page.text


def test_a_twitch_outage_is_explained_not_a_500(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    control(twitch_server.url, helix_failure=503)
    page = choose_favorite(http, twitch_server.url, "example_streamer")
    assert page.status_code == 503
    assert "Twitch cannot be reached right now" in page.text


def test_a_favorite_needs_a_csrf_token(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    page = http.post(f"{twitch_server.url}/favorite", data={"login": "other_streamer"})
    assert page.status_code == 400
    assert "Form refused" in page.text
    assert rows(twitch_server, User)[0].favorite_login is None


def test_a_favorite_sent_after_the_session_ended_asks_to_sign_in(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    data = {
        "login": "example_streamer",
        "csrf_token": csrf_token(http, twitch_server.url),
    }
    with later(days=7, seconds=1):
        page = http.post(f"{twitch_server.url}/favorite", data=data)
    assert page.status_code == 401
    assert "Sign in to keep a favorite streamer." in page.text


def test_a_hundred_viewers_naming_one_streamer_cost_one_lookup(twitch_server):
    viewers = [requests.Session() for _ in range(3)]
    for http in viewers:
        sign_in(http, twitch_server.url)
    before = calls(twitch_server.url)["users"]
    for http in viewers * 34:
        choose_favorite(http, twitch_server.url, "example_streamer")
    assert calls(twitch_server.url)["users"] - before == 1


def test_a_rate_limited_lookup_waits_for_the_bucket_and_succeeds(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    control(twitch_server.url, rate_limited=1)
    page = choose_favorite(http, twitch_server.url, "other_streamer")
    assert page.url == f"{twitch_server.url}/watch/other_streamer", page.text


# Seven days, and the hourly validation


def test_a_session_ends_seven_days_after_sign_in(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    with later(days=7, seconds=1):
        page = http.get(f"{twitch_server.url}/")
    assert "Your session ended 7 days after you signed in." in page.text
    assert "Sign in with Twitch" in page.text


def test_a_session_in_use_still_ends_after_seven_days(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    for day in range(1, 7):
        with later(days=day):
            assert signed_in_as(http, twitch_server.url) == "Viewer_One"
    with later(days=7, seconds=1):
        assert signed_in_as(http, twitch_server.url) is None


def test_within_the_hour_the_token_is_not_validated_again(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    before = calls(twitch_server.url)["validate"]
    for _ in range(5):
        http.get(f"{twitch_server.url}/")
    assert calls(twitch_server.url)["validate"] == before


def test_after_an_hour_the_token_is_validated_again(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    before = calls(twitch_server.url)["validate"]
    with later(minutes=61):
        assert signed_in_as(http, twitch_server.url) == "Viewer_One"
    assert calls(twitch_server.url)["validate"] == before + 1


def test_an_expired_token_is_refreshed_and_the_session_goes_on(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    (before,) = rows(twitch_server, TwitchToken)
    with later(hours=5):
        assert signed_in_as(http, twitch_server.url) == "Viewer_One"
    (after,) = rows(twitch_server, TwitchToken)
    assert after.access_token != before.access_token
    assert after.ended_at is None


def test_a_token_twitch_no_longer_accepts_ends_its_session(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    control(twitch_server.url, revoke_user="viewer_one")
    with later(minutes=61):
        page = http.get(f"{twitch_server.url}/")
    assert "Twitch no longer accepts your sign-in." in page.text
    (token,) = rows(twitch_server, TwitchToken)
    assert token.ended_at is not None


# Tokens at rest


def test_tokens_are_stored_encrypted_and_never_logged(twitch_server, caplog):
    http = requests.Session()
    sign_in(http, twitch_server.url, account="example_streamer")
    (row,) = rows(twitch_server, TwitchToken)
    box = twitch_server.app.extensions["token_box"]
    access, refresh = box.open(row.access_token), box.open(row.refresh_token)
    assert access not in row.access_token and refresh not in row.refresh_token
    assert access[:20] not in caplog.text and refresh[:20] not in caplog.text


# Connecting a channel


def connect(http, url: str, account: str, **params):
    page = http.get(f"{url}/auth/connect", params=params)
    assert page.status_code == 200, page.text
    form = consent_form(page.text) | {"account": account}
    return form, http.post(f"{url}/simulator/twitch/oauth2/authorize", data=form)


def test_a_streamer_connects_their_channel_with_the_feed_scopes(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url, account="example_streamer")
    form, end = connect(http, twitch_server.url, "example_streamer")
    assert end.url == f"{twitch_server.url}/watch/example_streamer?connected=1"
    assert form["force_verify"] == "true"
    channel = [t for t in rows(twitch_server, TwitchToken) if t.purpose == "channel"]
    assert [(t.channel_id, t.channel_login) for t in channel] == [
        ("1000001", "example_streamer")
    ]
    assert "moderator:read:followers" in channel[0].scopes.split()


def test_a_moderator_connects_the_channel_they_moderate(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url, account="mod_maria")
    _, end = connect(http, twitch_server.url, "mod_maria", channel="example_streamer")
    assert end.url.endswith("/watch/example_streamer?connected=1"), end.text
    assert "Channel connected." in end.text
    channel = [t for t in rows(twitch_server, TwitchToken) if t.purpose == "channel"]
    assert [(t.twitch_user_id, t.channel_id) for t in channel] == [
        ("3000001", "1000001")
    ]


def test_a_viewer_cannot_connect_someone_elses_channel(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    _, end = connect(http, twitch_server.url, "viewer_one", channel="example_streamer")
    assert end.status_code == 400
    assert "<h1>Connecting the channel did not finish</h1>" in end.text
    assert "You are not a moderator of example_streamer" in end.text
    assert "/auth/connect?channel=example_streamer" in end.text


@pytest.mark.parametrize(
    ("channel", "status", "message"),
    [
        ("no_such_channel", 404, "There is no Twitch channel named no_such_channel."),
        ("no way", 400, "Cannot connect that channel"),
    ],
    ids=["unknown", "malformed"],
)
def test_connecting_a_channel_that_is_not_says_so_before_consent(
    twitch_server, channel, status, message
):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    page = http.get(f"{twitch_server.url}/auth/connect", params={"channel": channel})
    assert page.status_code == status
    assert "<h1>Connecting the channel did not finish</h1>" in page.text
    assert message in page.text
    assert "/simulator/twitch/oauth2/authorize" not in page.url


def test_connecting_with_another_twitch_account_is_refused(twitch_server):
    http = requests.Session()
    sign_in(http, twitch_server.url)
    _, end = connect(http, twitch_server.url, "example_streamer")
    assert end.status_code == 400
    assert "with the Twitch account you use here" in end.text


def test_connecting_needs_a_sign_in_first(twitch_server):
    page = requests.get(f"{twitch_server.url}/auth/connect", allow_redirects=False)
    assert page.status_code == 302
    assert "/auth/login/twitch" in page.headers["Location"]


# Providers and stores


@pytest.mark.settings(GITHUB_CLIENT_ID="gh-id", GITHUB_CLIENT_SECRET="gh-secret")
def test_github_is_offered_when_configured(twitch_server):
    page = requests.get(f"{twitch_server.url}/").text
    assert "Sign in with Twitch" in page and "Sign in with GitHub" in page


def test_github_is_not_offered_unless_configured(twitch_server):
    page = requests.get(f"{twitch_server.url}/").text
    assert "Sign in with GitHub" not in page


@pytest.mark.settings(REDIS_URL=REDIS_URL)
def test_with_redis_the_session_lives_in_redis_and_sign_out_removes_it(
    twitch_server,
):
    prefix = twitch_server.app.config["SESSION_KEY_PREFIX"]
    store = redis.Redis.from_url(REDIS_URL)
    http = requests.Session()
    sign_in(http, twitch_server.url)
    stored = store.keys(f"{prefix}*")
    data = {"csrf_token": csrf_token(http, twitch_server.url)}
    http.post(f"{twitch_server.url}/auth/logout", data=data)
    assert len(stored) == 1
    assert store.keys(f"{prefix}*") == []


def test_an_error_from_the_callback_url_cannot_forge_log_lines(client, caplog):
    """Anyone can open the callback; its error was logged raw, newlines and all."""
    caplog.set_level(logging.INFO, logger="app.auth")
    response = client.get("/auth/callback/twitch?error=x%0AERROR+forged+line")
    assert response.status_code == 400
    logged = [
        r.getMessage() for r in caplog.records if "provider answered" in r.getMessage()
    ]
    assert len(logged) == 1 and "\n" not in logged[0]
