"""GET /api/streamers/<login>/channel: stream status, title and live types."""

import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from app.catalogue import FEED_TYPES
from app.channel import NOT_CONNECTED
from app.channel import NOT_SUBSCRIBED
from conftest import compact
from conftest import load_sample
from conftest import signed_headers
from jobs.plan import SUBSCRIBED_TYPES

OTHER_STREAMER_ID = "1000002"


def twitch_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def post(client, body: dict, message_type: str, sent_at: datetime | None = None):
    raw = compact(body)
    timestamp = twitch_time(sent_at) if sent_at else None
    headers = signed_headers(raw, message_type, timestamp=timestamp)
    response = client.post("/webhooks/eventsub", data=raw, headers=headers)
    assert response.status_code in (200, 204), response.text
    return response


def post_event(client, sample: str, sent_at: datetime | None = None, **fields):
    body = load_sample(sample)
    body["event"].update(fields)
    post(client, body, "notification", sent_at)


def post_subscription(
    client,
    subscription_type: str,
    status: str = "enabled",
    streamer_id: str = "1000001",
    condition_key: str = "broadcaster_user_id",
):
    """Enable a subscription by its challenge, or revoke it with ``status``."""
    name = f"{subscription_type}:{condition_key}:{streamer_id}"
    subscription = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        "status": "webhook_callback_verification_pending",
        "type": subscription_type,
        "version": "1",
        "cost": 0,
        "condition": {condition_key: streamer_id},
        "transport": {"method": "webhook", "callback": "https://example.com/"},
        "created_at": twitch_time(datetime.now(UTC)),
    }
    if status == "enabled":
        body = {"challenge": "abc", "subscription": subscription}
        post(client, body, "webhook_callback_verification")
    else:
        post(client, {"subscription": subscription | {"status": status}}, "revocation")


def channel(client, login: str = "example_streamer") -> dict:
    response = client.get(f"/api/streamers/{login}/channel")
    assert response.status_code == 200, response.text
    return response.get_json()


def reasons(state: dict) -> dict[str, str | None]:
    return {t["type"]: t["reason"] for t in state["types"]}


# Stream status and title


def test_a_channel_without_events_has_an_unknown_status(client):
    state = channel(client, "quiet_channel")

    assert state["stream"]["status"] == "unknown"
    assert state["info"] is None
    assert state["streamer"] == {"login": "quiet_channel", "id": None}


def test_status_is_the_last_change_by_when_it_happened(client):
    """Guards against a stream.offline delivered late flipping a live channel."""
    started = datetime.now(UTC) - timedelta(minutes=1)
    post_event(client, "stream.online.v1", started_at=twitch_time(started))
    post_event(client, "stream.offline.v1", started - timedelta(minutes=2))

    stream = channel(client)["stream"]

    assert stream["status"] == "online"
    assert stream["started_at"] == twitch_time(started)


def test_a_newer_offline_ends_the_stream(client):
    started = datetime.now(UTC) - timedelta(minutes=5)
    post_event(client, "stream.online.v1", started_at=twitch_time(started))
    post_event(client, "stream.offline.v1")

    assert channel(client)["stream"]["status"] == "offline"


def test_title_and_category_come_from_the_latest_update(client):
    earlier = datetime.now(UTC) - timedelta(minutes=3)
    post_event(client, "channel.update.v2", title="New title", category_name="Celeste")
    post_event(client, "channel.update.v2", earlier, title="Old title")

    info = channel(client)["info"]

    assert (info["title"], info["category"]) == ("New title", "Celeste")


# Live types


def test_without_subscriptions_every_type_says_why_it_is_not_live(client):
    post_event(client, "channel.follow.v2")

    state = channel(client)
    public = {t.type for t in FEED_TYPES if t.public and t.type in SUBSCRIBED_TYPES}

    assert not any(t["live"] for t in state["types"])
    assert {reasons(state)[name] for name in public} == {NOT_SUBSCRIBED}
    assert reasons(state)["channel.cheer"] == NOT_CONNECTED


def test_an_enabled_subscription_makes_its_type_live(client):
    post_event(client, "channel.follow.v2")
    post_subscription(client, "stream.online")

    state = channel(client)
    live = [t["type"] for t in state["types"] if t["live"]]

    assert live == ["stream.online"]
    assert state["streamer"]["id"] == "1000001"


def test_a_connected_streamer_lacks_other_scoped_types_only_by_subscription(client):
    post_event(client, "channel.follow.v2")
    post_subscription(client, "channel.follow")

    assert reasons(channel(client))["channel.cheer"] == NOT_SUBSCRIBED


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("authorization_revoked", "the streamer withdrew streamfeed's access"),
        ("user_removed", "the Twitch account no longer exists"),
        (
            "notification_failures_exceeded",
            "Twitch stopped it after too many failed deliveries",
        ),
        ("version_removed", "Twitch no longer offers this version of the type"),
        ("brand_new_reason", "Twitch reports it as brand_new_reason"),
    ],
    ids=["revoked", "user-removed", "failures", "version", "unknown"],
)
def test_a_revoked_type_gives_the_reason_in_plain_words(client, status, reason):
    post_event(client, "channel.follow.v2")
    post_subscription(client, "channel.cheer")
    post_subscription(client, "channel.cheer", status)

    assert reasons(channel(client))["channel.cheer"] == reason


def test_one_enabled_subscription_of_a_type_is_enough(client):
    """A raid has one subscription per direction; one revoked leaves it live."""
    post_event(client, "channel.follow.v2")
    post_subscription(client, "channel.raid", condition_key="to_broadcaster_user_id")
    post_subscription(client, "channel.raid", condition_key="from_broadcaster_user_id")
    post_subscription(
        client,
        "channel.raid",
        "authorization_revoked",
        condition_key="from_broadcaster_user_id",
    )

    assert reasons(channel(client))["channel.raid"] is None


def test_another_streamers_subscriptions_do_not_count(client):
    post_event(client, "channel.follow.v2")
    post_subscription(client, "stream.online", streamer_id=OTHER_STREAMER_ID)

    assert not any(t["live"] for t in channel(client)["types"])


def test_a_bad_login_gets_400_naming_the_rule(client):
    response = client.get("/api/streamers/no/channel")

    assert response.status_code == 400, response.text
    assert response.get_json()["error"] == "invalid_login"
