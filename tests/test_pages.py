"""Home and watch pages, rendered by the server."""

import pytest

from conftest import compact
from conftest import load_sample
from conftest import signed_headers


def test_home_asks_for_a_login(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b'name="login"' in response.data


def test_a_valid_login_goes_to_its_watch_page(client):
    response = client.get("/watch?login=Example_Streamer")
    assert response.status_code == 302
    assert response.headers["Location"] == "/watch/example_streamer"


@pytest.mark.parametrize(
    "login", ["", "abc", "a" * 26, "has space", "dash-ed", "<script>"]
)
def test_a_bad_login_gets_a_clear_message_on_the_page(client, login):
    response = client.get("/watch", query_string={"login": login})
    assert response.status_code == 400
    assert "4 to 25 letters, digits or underscores" in response.text
    assert "<script>" not in response.text


def test_watch_page_embeds_player_and_chat_for_the_host(client):
    response = client.get("/watch/example_streamer", base_url="http://feed.example.com")
    assert (
        "https://player.twitch.tv/?channel=example_streamer&amp;parent=feed.example.com"
        in response.text
    )
    assert (
        "https://www.twitch.tv/embed/example_streamer/chat?parent=feed.example.com"
        in response.text
    )
    assert 'data-ws-path="/ws/streamers/example_streamer"' in response.text


def test_watch_page_by_ip_address_explains_instead_of_embedding(client):
    response = client.get("/watch/example_streamer", base_url="http://127.0.0.1:5000")
    assert "player.twitch.tv" not in response.text
    assert "http://localhost:5000" in response.text


def test_watch_page_with_a_bad_login_is_a_404_with_the_rule(client):
    response = client.get("/watch/no")
    assert response.status_code == 404
    assert "4 to 25 letters" in response.text


def test_pages_forbid_inline_scripts(client):
    policy = client.get("/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-src https://player.twitch.tv https://www.twitch.tv" in policy


def test_watch_page_carries_the_channel_state_for_its_script(client):
    response = client.get("/watch/example_streamer")
    assert '<script id="channel-state" type="application/json">' in response.text
    assert '"login": "example_streamer"' in response.text


def test_channel_state_in_the_page_cannot_close_its_script_element(client):
    """Guards against a channel title ending the JSON block and adding markup."""
    body = load_sample("channel.update.v2")
    body["event"]["title"] = "</script><script>alert(1)</script>"
    raw = compact(body)
    client.post("/webhooks/eventsub", data=raw, headers=signed_headers(raw))

    response = client.get("/watch/example_streamer")
    assert "<script>alert(1)" not in response.text
    assert response.text.count("</script>") == 2


def test_pages_may_load_twitchs_embed_script_to_detect_internet_access(client):
    policy = client.get("/watch/example_streamer").headers["Content-Security-Policy"]
    assert "script-src 'self' https://player.twitch.tv;" in policy


@pytest.mark.parametrize(
    "path", ["/", "/watch/example_streamer", "/stats/example_streamer", "/api/events"]
)
def test_a_host_header_werkzeug_cannot_read_gets_400_not_500(client, path):
    """The 400 page needed url_for, which has nothing to bind to: 500."""
    response = client.get(path, headers={"Host": "a..b"})
    assert response.status_code == 400, response.text
    assert "Host header" in response.text


def test_a_unicode_error_of_our_own_is_still_a_500(app):
    """Only wsproto's handshake decoding is the client's fault."""

    @app.get("/broken-for-test")
    def broken():
        b"\xff".decode("ascii")

    response = app.test_client().get("/broken-for-test")
    assert response.status_code == 500
