"""GET /api/events and /api/streamers/<login>/events."""

import pytest

from conftest import compact
from conftest import load_sample
from conftest import post_sample
from conftest import signed_headers


def post_for(client, streamer_login: str, streamer_id: str, message_id: str):
    body = load_sample("channel.follow.v2")
    body["subscription"]["condition"]["broadcaster_user_id"] = streamer_id
    body["event"]["broadcaster_user_id"] = streamer_id
    body["event"]["broadcaster_user_login"] = streamer_login
    raw = compact(body)
    headers = signed_headers(raw, message_id=message_id)
    assert (
        client.post("/webhooks/eventsub", data=raw, headers=headers).status_code == 204
    )


def test_lists_events_newest_first_with_what_the_feed_shows(client):
    post_sample(client, "channel.follow.v2", message_id="first")
    post_sample(client, "channel.cheer.v1.anonymous", message_id="second")
    events = client.get("/api/events").get_json()["events"]
    assert [e["message_id"] for e in events] == ["second", "first"]
    assert events[0]["summary"].startswith("Anonymous cheered 250 bits")
    assert events[1]["actor"] == {"id": "2000002", "name": "星野さくら"}
    assert events[1]["streamer"] == {"id": "1000001", "login": "example_streamer"}


def test_an_event_carries_type_times_and_cursor(client):
    post_sample(client, "channel.raid.v1", message_id="raid")
    event = client.get("/api/events").get_json()["events"][0]
    assert (event["type"], event["version"]) == ("channel.raid", "1")
    assert event["occurred_at"].endswith("Z") and event["received_at"].endswith("Z")
    assert event["cursor"].isdigit()


def test_pages_back_with_the_cursor(client):
    for index in range(5):
        post_for(client, "example_streamer", "1000001", f"m{index}")
    first = client.get("/api/streamers/example_streamer/events?limit=2").get_json()
    cursor = first["next_cursor"]
    second = client.get(
        f"/api/streamers/example_streamer/events?limit=2&before={cursor}"
    )
    assert [e["message_id"] for e in first["events"]] == ["m4", "m3"]
    assert [e["message_id"] for e in second.get_json()["events"]] == ["m2", "m1"]


def test_the_last_page_has_no_next_cursor(client):
    post_for(client, "example_streamer", "1000001", "only")
    page = client.get("/api/streamers/example_streamer/events?limit=5").get_json()
    assert page["next_cursor"] is None


def test_a_streamer_sees_only_their_events(client):
    post_for(client, "example_streamer", "1000001", "mine")
    post_for(client, "other_streamer", "1000002", "theirs")
    response = client.get("/api/streamers/Other_Streamer/events")
    assert [e["message_id"] for e in response.get_json()["events"]] == ["theirs"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("limit=0", "invalid_limit"),
        ("limit=201", "invalid_limit"),
        ("limit=abc", "invalid_limit"),
        ("limit=-5", "invalid_limit"),
        ("limit=²", "invalid_limit"),
        ("before=x", "invalid_before"),
        ("before=0", "invalid_before"),
        ("before=99999999999999999999999", "invalid_before"),
    ],
)
def test_bad_parameters_get_400_saying_what_is_accepted(client, query, code):
    response = client.get(f"/api/streamers/example_streamer/events?{query}")
    body = response.get_json()
    assert response.status_code == 400, response.text
    assert body["error"] == code
    assert "must be" in body["message"]


@pytest.mark.parametrize("login", ["abc", "a" * 26, "bad-login", "x%20y"])
def test_a_bad_login_gets_400(client, login):
    response = client.get(f"/api/streamers/{login}/events")
    assert response.status_code == 400, response.text
    assert response.get_json()["error"] == "invalid_login"


def test_unknown_api_paths_answer_json_404(client):
    response = client.get("/api/nothing")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_one_event_with_a_wild_amount_does_not_break_the_list(client):
    """A donation of 10**400 made summarize raise; the whole list answered 500."""
    body = load_sample("channel.charity_campaign.donate.v1")
    body["event"]["amount"]["value"] = 10**400
    raw = compact(body)
    headers = signed_headers(raw, message_id="wild")
    assert (
        client.post("/webhooks/eventsub", data=raw, headers=headers).status_code == 204
    )
    post_sample(client, "channel.follow.v2", message_id="plain")
    for url in ("/api/events", "/api/streamers/example_streamer/events"):
        response = client.get(url)
        assert response.status_code == 200, response.text
        assert [e["message_id"] for e in response.get_json()["events"]] == [
            "plain",
            "wild",
        ]
