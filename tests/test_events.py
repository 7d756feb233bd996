"""What a notification means: streamer, actor, time and the feed's sentence."""

from datetime import UTC
from datetime import datetime

import pytest

from app.events import build_rows
from app.events import summarize
from conftest import load_sample

SENT = datetime(2026, 3, 14, 21, 0, tzinfo=UTC)

SUMMARIES = {
    "channel.follow.v2": "星野さくら followed",
    "channel.subscribe.v1": "Pixel_Pioneer subscribed at Tier 1",
    "channel.subscription.gift.v1": (
        "星野さくら gifted 5 Tier 1 subs (12 gifted in the channel so far)"
    ),
    "channel.subscription.gift.v1.anonymous": "Anonymous gifted 1 Tier 2 sub",
    "channel.subscription.message.v1": (
        "Viewer_One resubscribed at Tier 1 for 14 months: Fourteen months already!"
        " exstrHype exstrLove see you at 15 🎂"
    ),
    "channel.subscription.end.v1": "quiet_lurker's Tier 2 subscription ended",
    "channel.cheer.v1": (
        'Pixel_Pioneer cheered 100 bits: Cheer100 <b>not bold</b> & "quoted" 🎉 GG!'
    ),
    "channel.cheer.v1.anonymous": (
        "Anonymous cheered 250 bits: Cheer250 anonymous love for the new emotes"
    ),
    "channel.bits.use.v1.power_up": (
        "星野さくら used 50 bits on a Power-up (gigantify an emote)"
    ),
    "channel.raid.v1": "Other_Streamer raided Example_Streamer with 1,203 viewers",
    "channel.poll.progress.v1": (
        "Poll so far: What do we play after chatting?: Stardew Valley (31 votes),"
        " Elden Ring (18 votes), Tetris 99 (9 votes)"
    ),
    "channel.prediction.progress.v1": (
        "Prediction so far: Do we beat the boss first try?: Yes, first try"
        " (41,800 points), No chance (19,650 points)"
    ),
    "channel.channel_points_custom_reward_redemption.add.v1": (
        "Viewer_One redeemed Song request 🎵 (500 points): Rick Astley - Never"
        ' Gonna Give You Up <3 & "Together Forever" 🎶'
    ),
    "channel.poll.end.v1": (
        "Poll ended: What do we play after chatting?: Stardew Valley won (57 votes)"
    ),
    "channel.prediction.end.v1": (
        "Prediction ended: Do we beat the boss first try?: Yes, first try won"
    ),
    "channel.hype_train.progress.v2": "Hype Train at level 2 (1900/2000)",
    "channel.hype_train.end.v2": "Hype Train ended at level 3",
    "stream.online.v1": "Example_Streamer went live",
    "stream.offline.v1": "Example_Streamer went offline",
    "channel.update.v2": (
        'New title: Cozy chat <3 & "hard" mode later >_< 🎮 !discord'
        " (category: Just Chatting)"
    ),
    "channel.charity_campaign.donate.v1": (
        "Viewer_One donated 25.00 USD to Example Wildlife Trust"
    ),
    "channel.ban.v1.timeout": "Troll_Account_99 was timed out by Mod_Maria",
}


@pytest.mark.parametrize(("sample", "expected"), SUMMARIES.items(), ids=list(SUMMARIES))
def test_each_type_reads_as_a_sentence(sample, expected):
    body = load_sample(sample)
    assert summarize(body["subscription"]["type"], body["event"]) == expected


def test_an_unknown_type_reads_generically():
    summary = summarize("channel.something_new", {"user_name": "Viewer_One"})
    assert summary == "channel.something_new event from Viewer_One"


def test_a_known_type_with_odd_fields_falls_back_instead_of_failing():
    summary = summarize("channel.poll.progress", {"choices": "not a list"})
    assert summary == "channel.poll.progress event"


def row_of(sample: str) -> dict:
    return build_rows("m", load_sample(sample), SENT, SENT)[0]


@pytest.mark.parametrize(
    "amount",
    [
        {"value": 10**400, "decimal_places": 0, "currency": "USD"},
        {"value": 5, "decimal_places": 10**6, "currency": "USD"},
        {"value": 5, "decimal_places": -2, "currency": "USD"},
    ],
    ids=["overflows-a-float", "a-million-places", "negative-places"],
)
def test_a_wild_charity_amount_falls_back_instead_of_failing(amount):
    """An OverflowError here used to make every read of the feed answer 500."""
    event = {"user_name": "Viewer_One", "charity_name": "Good", "amount": amount}
    summary = summarize("channel.charity_campaign.donate", event)
    assert summary == "channel.charity_campaign.donate event from Viewer_One"


def test_the_streamer_comes_from_the_condition_not_the_event():
    """Charity start names the streamer broadcaster_*, unlike other types."""
    row = row_of("channel.charity_campaign.start.v1")
    assert (row["streamer_id"], row["streamer_name"]) == ("1000001", "example_streamer")


def test_an_outgoing_raid_belongs_to_the_raiding_streamer():
    """The unused raid condition key arrives as an empty string."""
    body = load_sample("channel.raid.v1")
    body["subscription"]["condition"] = {
        "from_broadcaster_user_id": "1000002",
        "to_broadcaster_user_id": "",
    }
    row = build_rows("m", body, SENT, SENT)[0]
    assert (row["streamer_id"], row["streamer_name"]) == ("1000002", "other_streamer")


def test_anonymous_actors_are_stored_without_a_user():
    row = row_of("channel.subscription.gift.v1.anonymous")
    assert (row["user_id"], row["user_name"]) == (None, None)


def test_the_event_time_comes_from_the_event_when_it_has_one():
    row = row_of("channel.follow.v2")
    assert row["occurred_at"] == datetime(2026, 3, 14, 18, 5, 41, 553902, tzinfo=UTC)


@pytest.mark.parametrize(
    ("followed_at", "expected"),
    [
        ("9999-12-31T00:00:00Z", SENT),
        ("2026-03-14T21:09:00Z", datetime(2026, 3, 14, 21, 9, tzinfo=UTC)),
    ],
    ids=["far-future", "a-little-skew"],
)
def test_an_event_time_after_the_message_was_sent_is_not_believed(
    followed_at, expected
):
    """A follow dated 9999 topped the feed and every report's last day forever."""
    body = load_sample("channel.follow.v2")
    body["event"]["followed_at"] = followed_at
    assert build_rows("m", body, SENT, SENT)[0]["occurred_at"] == expected


def test_progress_events_happen_when_sent():
    assert row_of("channel.goal.progress.v1")["occurred_at"] == SENT
