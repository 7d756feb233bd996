"""The stats page and its CSV and JSON reports, on both databases.

The data is the fixed set of tests/test_reports.py, stored through the same
path as webhooks use, so the numbers here can be checked by hand there.
"""

import html
import json
import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from markupsafe import escape
from test_reports import DATA
from test_reports import event_of

from app.events import build_rows
from app.extensions import db
from app.reports import Result
from app.stats import Range
from app.stats import chart_events_by_day
from app.stats import chart_follows_by_day
from app.stats import fill_days
from app.stats import to_csv
from app.store import store_events

CHART = re.compile(r"data-chart='([^']*)'")
BAD_RANGES = [
    ({"since": "14/03/2026"}, "must be an ISO date, YYYY-MM-DD, such as 2026-03-14"),
    ({"until": "2026-02-30"}, "got '2026-02-30'"),
    ({"since": "20260314"}, "got '20260314'"),
    ({"since": "2026-W11-6"}, "got '2026-W11-6'"),
    ({"since": "2026-03-15", "until": "2026-03-14"}, "must not be after until"),
]
BAD_RANGE_IDS = ["day-first", "no-such-day", "basic-format", "week-date", "reversed"]


def store(app, data) -> None:
    """Store (body, time) pairs as webhooks would, numbered from 0."""
    with app.app_context():
        for index, (body, when) in enumerate(data):
            store_events(db.session, build_rows(f"fixed-{index}", body, when, when))
        db.session.commit()


@pytest.fixture
def filled(app):
    store(app, DATA)
    return app


def charts_of(page: str) -> list[dict]:
    """The chart data the page hands to stats.js, in page order."""
    return [json.loads(html.unescape(found)) for found in CHART.findall(page)]


def test_page_hands_each_chart_its_labels_and_numbers(filled, client):
    response = client.get("/stats/Example_Streamer")
    assert response.status_code == 200, response.text

    events, follows, gifters, cheerers = charts_of(response.text)
    assert events["labels"] == ["2026-03-14", "2026-03-15"]
    assert events["datasets"] == [
        {"label": "Follows", "data": [2, 1]},
        {"label": "Subscriptions", "data": [1, 2]},
        {"label": "Bits", "data": [2, 2]},
    ]
    assert [d["data"] for d in follows["datasets"]] == [[2, 1], [2, 3]]
    assert (gifters["labels"], cheerers["datasets"][0]["data"]) == (
        ["星野さくら", "Anonymous"],
        [300, 250, 150],
    )


def test_events_chart_sums_types_by_the_feeds_groups():
    """Forty types in one legend repeated colours and hid the axis."""
    rows = [
        {"day": "2026-03-14", "event_type": "channel.cheer", "count_all": 2},
        {"day": "2026-03-14", "event_type": "channel.bits.use", "count_all": 3},
        {"day": "2026-03-15", "event_type": "channel.made_up", "count_all": 1},
        {"day": "2026-03-15", "event_type": "stream.online", "count_all": 1},
    ]

    chart = chart_events_by_day(rows, Range("2026-03-14", "2026-03-15"))

    assert chart["datasets"] == [
        {"label": "Stream", "data": [0, 1]},
        {"label": "Bits", "data": [5, 0]},
        {"label": "Other types", "data": [0, 1]},
    ]


def test_page_range_narrows_every_chart(filled, client):
    response = client.get("/stats/example_streamer?since=2026-03-15&until=2026-03-15")

    events, _, gifters, cheerers = charts_of(response.text)
    assert events["labels"] == ["2026-03-15"]
    assert gifters["datasets"][0]["data"] == [2, 1]
    assert cheerers["labels"] == ["Pixel_Pioneer", "Viewer_One"]


def test_page_without_events_in_range_says_so_instead_of_charts(filled, client):
    response = client.get("/stats/example_streamer?since=2026-04-01")

    assert response.status_code == 200
    assert charts_of(response.text) == []
    assert "No events in this range." in response.text
    assert "No cheers in this range." in response.text


def test_page_marks_all_time_and_keeps_the_typed_range(client):
    all_time = client.get("/stats/quiet_channel").text
    ranged = client.get("/stats/quiet_channel?since=2026-03-01").text

    assert (
        '<a href="/stats/quiet_channel"\n             aria-current="page"' in all_time
    )
    assert 'name="since" type="date" value="2026-03-01"' in ranged
    assert 'href="/stats/quiet_channel/top-gifters.csv?since=2026-03-01"' in ranged


def test_page_links_back_to_the_live_feed(client):
    assert 'href="/watch/quiet_channel"' in client.get("/stats/quiet_channel").text


@pytest.mark.parametrize(("query", "message"), BAD_RANGES, ids=BAD_RANGE_IDS)
def test_page_with_a_bad_range_is_a_400_saying_what_is_accepted(client, query, message):
    response = client.get("/stats/example_streamer", query_string=query)
    assert response.status_code == 400, response.text
    assert escape(message) in response.text
    assert charts_of(response.text) == []


def test_csv_is_a_named_download_of_the_report(filled, client):
    response = client.get(
        "/stats/example_streamer/top-gifters.csv?since=2026-03-15&until=2026-03-15"
    )

    assert response.status_code == 200, response.text
    assert response.mimetype == "text/csv"
    filename = "example_streamer-top-gifters-2026-03-15-to-2026-03-15.csv"
    disposition = response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="{filename}"'
    assert (
        response.text
        == "supporter,gifted_subs,gifts\r\n星野さくら,2,1\r\nAnonymous,1,1\r\n"
    )


def test_csv_of_all_time_names_the_range(filled, client):
    response = client.get("/stats/example_streamer/follows-by-day.csv")

    assert response.text.splitlines() == [
        "day,follows,running_total",
        "2026-03-14,2,2",
        "2026-03-15,1,3",
    ]
    assert "follows-by-day-all-time.csv" in response.headers["Content-Disposition"]


@pytest.mark.parametrize(("query", "message"), BAD_RANGES, ids=BAD_RANGE_IDS)
def test_csv_with_a_bad_range_is_a_400_saying_what_is_accepted(client, query, message):
    response = client.get(
        "/stats/example_streamer/events-by-day.csv", query_string=query
    )
    assert response.status_code == 400, response.text
    assert escape(message) in response.text


def test_json_gives_the_report_rows_and_its_range(filled, client):
    response = client.get("/stats/example_streamer/top-cheerers.json?until=2026-03-14")

    assert response.status_code == 200, response.text
    assert response.json["rows"] == [
        {"supporter": "Anonymous", "bits": 250, "cheers": 1},
        {"supporter": "Viewer_One", "bits": 100, "cheers": 1},
    ]
    assert (response.json["since"], response.json["until"]) == (None, "2026-03-14")


@pytest.mark.parametrize(("query", "message"), BAD_RANGES, ids=BAD_RANGE_IDS)
def test_json_with_a_bad_range_is_a_400_in_the_api_shape(client, query, message):
    response = client.get(
        "/stats/example_streamer/events-by-day.json", query_string=query
    )
    assert response.status_code == 400, response.text
    assert response.json["error"] == "invalid_range"
    assert message in response.json["message"]


@pytest.mark.parametrize(
    ("path", "mimetype"),
    [("", "text/html"), (".csv", "text/html"), (".json", "application/json")],
    ids=["page", "csv", "json"],
)
@pytest.mark.parametrize("login", ["abc", "dash-ed", "<script>", "a" * 26])
def test_a_bad_login_is_a_404_with_the_rule(client, path, mimetype, login):
    url = f"/stats/{login}/events-by-day{path}" if path else f"/stats/{login}"
    response = client.get(url)
    assert response.status_code == 404, response.text
    assert response.mimetype == mimetype
    assert "4 to 25 letters, digits or underscores" in response.text


def test_a_bad_login_is_escaped_on_the_404_page(client):
    response = client.get("/stats/<script>")
    assert "&lt;script&gt;" in response.text
    assert "<script>" not in response.text


@pytest.mark.parametrize("name", ["events-by-streamer", "no-such-report"])
@pytest.mark.parametrize("suffix", ["csv", "json"])
def test_reports_outside_the_stats_page_are_404(client, name, suffix):
    """Guards against events-by-streamer leaking every other channel's counts."""
    response = client.get(f"/stats/example_streamer/{name}.{suffix}")
    assert response.status_code == 404, response.text
    assert "known: events-by-day, follows-by-day" in response.text


def test_supporter_name_with_markup_stays_text_in_the_page(app, client):
    hostile = ("2000009", "hostile", "<b>'Bold\"</b>")
    cheer = event_of("channel.cheer.v1", DATA[0][1], hostile, bits=5)
    store(app, [cheer])

    page = client.get("/stats/example_streamer").text
    assert "<b>" not in page
    assert charts_of(page)[-1]["labels"] == ["<b>'Bold\"</b>"]


def test_csv_quotes_names_a_spreadsheet_would_run():
    """Guards against formula injection when a CSV is opened in a spreadsheet."""
    result = Result(["supporter", "bits"], [("=HYPERLINK(1)", 5), ("Viewer", -1)])
    assert to_csv(result).splitlines() == [
        "supporter,bits",
        "'=HYPERLINK(1),5",
        "Viewer,-1",
    ]


def test_days_without_events_are_filled_with_zero():
    rows = [
        {"day": "2026-03-14", "follows": 2, "running_total": 2},
        {"day": "2026-03-16", "follows": 1, "running_total": 3},
    ]
    chart = chart_follows_by_day(rows, Range("2026-03-13", None))

    assert chart["labels"] == ["2026-03-13", "2026-03-14", "2026-03-15", "2026-03-16"]
    assert [d["data"] for d in chart["datasets"]] == [[0, 2, 0, 1], [0, 2, 2, 3]]


def test_a_range_too_long_to_fill_keeps_to_the_days_with_data():
    days = fill_days(["2026-03-15", "2026-03-14"], Range("1900-01-01", "2026-12-31"))
    assert days == ["2026-03-14", "2026-03-15"]


def test_days_with_data_centuries_apart_are_not_filled():
    """Follows dated 0001 and 9999 made a 3.65-million-bar, 135 MB page."""
    days = fill_days(["9999-12-31", "0001-01-01", "9999-12-31"], Range(None, None))
    assert days == ["0001-01-01", "9999-12-31"]


def test_a_page_with_events_centuries_apart_stays_small(app, client):
    follows = [
        event_of("channel.follow.v2", DATA[0][1], followed_at=when)
        for when in ("0001-01-01T00:00:00Z", "9999-12-31T00:00:00Z")
    ]
    store(app, follows)
    response = client.get("/stats/example_streamer")
    assert response.status_code == 200
    assert len(response.data) < 200_000


def test_last_7_days_ends_today_in_utc(client):
    today = datetime.now(UTC).date()
    week_ago = today - timedelta(days=6)

    page = client.get("/stats/quiet_channel").text
    expected = f'?since={week_ago}&amp;until={today}"\n             >Last 7 days'
    assert expected in page


def test_amounts_too_big_to_sum_do_not_break_the_page(app, client):
    """Two cheers of 2**62 bits overflowed the report's BIGINT sum: 500."""
    viewer = ("2000010", "whale", "Whale")
    cheers = [event_of("channel.cheer.v1", DATA[0][1], viewer, bits=2**62)] * 2
    store(app, cheers)
    for path in ("", "/top-cheerers.json", "/top-cheerers.csv"):
        response = client.get("/stats/example_streamer" + path)
        assert response.status_code == 200, response.text
    rows = client.get("/stats/example_streamer/top-cheerers.json").get_json()["rows"]
    assert rows == [{"supporter": "Whale", "bits": 0, "cheers": 2}]
