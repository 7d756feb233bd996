"""Reports in sql/: exact output on a small fixed data set, on both databases."""

import json
from datetime import UTC
from datetime import datetime

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from app.events import build_rows
from app.extensions import db
from app.reports import load_reports
from app.store import store_events
from cli import cli
from conftest import SECRET
from conftest import TEST_SECRET_KEY
from conftest import load_sample

MARCH_14 = datetime(2026, 3, 14, 18, 30, tzinfo=UTC)
MARCH_15 = datetime(2026, 3, 15, 23, 59, 59, tzinfo=UTC)
VIEWER_ONE = ("2000001", "viewer_one", "Viewer_One")
SAKURA = ("2000002", "sakura_hoshino", "星野さくら")
PIXEL = ("2000003", "pixel_pioneer", "Pixel_Pioneer")
ANONYMOUS = (None, None, None)


def event_of(sample: str, when: datetime, user=None, streamer=None, **fields):
    body = load_sample(sample)
    event = body["event"]
    for key in ("followed_at", "started_at"):
        event.pop(key, None)
    if user:
        event["user_id"], event["user_login"], event["user_name"] = user
        event["is_anonymous"] = user == ANONYMOUS
    if streamer:
        body["subscription"]["condition"]["broadcaster_user_id"] = streamer[0]
        event["broadcaster_user_id"], event["broadcaster_user_login"] = streamer
    event.update(fields)
    return body, when


OTHER = ("1000002", "other_streamer")
DATA = [
    event_of("channel.follow.v2", MARCH_14, VIEWER_ONE),
    event_of("channel.follow.v2", MARCH_14, PIXEL),
    event_of("channel.follow.v2", MARCH_15, SAKURA),
    event_of("channel.cheer.v1", MARCH_14, VIEWER_ONE, bits=100),
    event_of("channel.cheer.v1", MARCH_15, VIEWER_ONE, bits=50),
    event_of("channel.cheer.v1", MARCH_14, ANONYMOUS, bits=250),
    event_of("channel.cheer.v1", MARCH_15, PIXEL, bits=300),
    event_of("channel.subscription.gift.v1", MARCH_14, SAKURA, total=5),
    event_of("channel.subscription.gift.v1", MARCH_15, ANONYMOUS, total=1),
    event_of("channel.subscription.gift.v1", MARCH_15, SAKURA, total=2),
    event_of("channel.follow.v2", MARCH_14, VIEWER_ONE, OTHER),
    event_of("channel.subscribe.v1", MARCH_15, PIXEL, OTHER),
]


@pytest.fixture
def filled(app, monkeypatch):
    """The fixed data set stored through the same path as webhooks use."""
    with app.app_context():
        for index, (body, when) in enumerate(DATA):
            rows = build_rows(f"fixed-{index}", body, when, when)
            store_events(db.session, rows)
        db.session.commit()
    monkeypatch.setenv("DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("EVENTSUB_SECRET", SECRET)
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("TWITCH_CLIENT_ID", "test-client-id")
    monkeypatch.setenv("TWITCH_CLIENT_SECRET", "test-client-secret")
    return app


def report(*args: str):
    result = CliRunner().invoke(cli, ["report", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


EXPECTED = {
    ("events-by-streamer",): [
        {"count_all": 10, "streamer_name": "example_streamer"},
        {"count_all": 2, "streamer_name": "other_streamer"},
    ],
    ("events-by-type-and-streamer", "--since", "2026-03-15"): [
        {
            "count_all": 2,
            "event_type": "channel.cheer",
            "streamer_name": "example_streamer",
        },
        {
            "count_all": 2,
            "event_type": "channel.subscription.gift",
            "streamer_name": "example_streamer",
        },
        {
            "count_all": 1,
            "event_type": "channel.follow",
            "streamer_name": "example_streamer",
        },
        {
            "count_all": 1,
            "event_type": "channel.subscribe",
            "streamer_name": "other_streamer",
        },
    ],
    ("events-by-day", "--streamer", "example_streamer", "--until", "2026-03-14"): [
        {"day": "2026-03-14", "event_type": "channel.cheer", "count_all": 2},
        {"day": "2026-03-14", "event_type": "channel.follow", "count_all": 2},
        {
            "day": "2026-03-14",
            "event_type": "channel.subscription.gift",
            "count_all": 1,
        },
    ],
    ("follows-by-day", "--streamer", "example_streamer"): [
        {"day": "2026-03-14", "follows": 2, "running_total": 2},
        {"day": "2026-03-15", "follows": 1, "running_total": 3},
    ],
    ("top-cheerers", "--streamer", "example_streamer"): [
        {"supporter": "Pixel_Pioneer", "bits": 300, "cheers": 1},
        {"supporter": "Anonymous", "bits": 250, "cheers": 1},
        {"supporter": "Viewer_One", "bits": 150, "cheers": 2},
    ],
    ("top-gifters", "--streamer", "example_streamer", "--since", "2026-03-15"): [
        {"supporter": "星野さくら", "gifted_subs": 2, "gifts": 1},
        {"supporter": "Anonymous", "gifted_subs": 1, "gifts": 1},
    ],
}


@pytest.mark.parametrize("exact", [False, True], ids=["rollups", "exact"])
@pytest.mark.parametrize("args", list(EXPECTED), ids=[a[0] for a in EXPECTED])
def test_each_report_gives_its_exact_output(filled, args, exact):
    assert report(*args, *(["--exact"] if exact else [])) == EXPECTED[args]


def test_every_report_in_sql_has_a_test():
    assert {args[0] for args in EXPECTED} == set(load_reports())


def test_a_redelivery_counts_nothing(filled):
    with filled.app_context():
        body, when = DATA[0]
        store_events(db.session, build_rows("fixed-0", body, when, when))
        db.session.commit()
    assert report("events-by-streamer")[0]["count_all"] == 10


def test_check_rollups_passes_on_a_consistent_database(filled):
    result = CliRunner().invoke(cli, ["check-rollups"])
    assert result.exit_code == 0, result.output
    assert "match" in result.output


def test_check_rollups_fails_on_any_difference(filled):
    with filled.app_context():
        db.session.execute(sa.text("UPDATE event_counts SET count = count + 1"))
        db.session.execute(sa.text("DELETE FROM events WHERE message_id = 'fixed-11'"))
        db.session.commit()
    result = CliRunner().invoke(cli, ["check-rollups"])
    assert result.exit_code == 1
    assert "other_streamer" in result.output
    assert "rollup counts differ" in result.output


def test_table_and_csv_formats(filled):
    table = CliRunner().invoke(cli, ["report", "events-by-streamer"]).output
    csv = (
        CliRunner()
        .invoke(cli, ["report", "events-by-streamer", "--format", "csv"])
        .output
    )
    assert table.splitlines()[2].split() == ["10", "example_streamer"]
    assert csv == "count_all,streamer_name\n10,example_streamer\n2,other_streamer\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-report"], "known: events-by-day"),
        (["events-by-day", "--since", "14/03/2026"], "YYYY-MM-DD such as 2026-03-14"),
        (["events-by-day", "--until", "2026-02-30"], "YYYY-MM-DD"),
        (["events-by-day", "--since", "20260301"], "YYYY-MM-DD"),
        (["events-by-day", "--since", "2026-W10"], "YYYY-MM-DD"),
        (["events-by-day"], "needs --streamer"),
        (["events-by-day", "--streamer", "x y"], "4 to 25 letters"),
        (["events-by-day", "--format", "xml"], "'table', 'csv', 'json'"),
        (
            ["events-by-streamer", "--since", "2026-03-02", "--until", "2026-03-01"],
            "must not be after --until",
        ),
        ([], "--list shows the reports"),
    ],
)
def test_bad_arguments_exit_2_saying_what_is_accepted(filled, args, message):
    result = CliRunner().invoke(cli, ["report", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_list_names_each_report_with_its_version():
    output = CliRunner().invoke(cli, ["report", "--list"]).output
    assert "events-by-streamer v2 (rollups, --exact for raw)" in output
    assert "top-gifters v1 (raw events)" in output
