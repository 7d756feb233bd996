"""POST /webhooks/eventsub through HTTP, on SQLite and on Postgres."""

import http.client
import json
import threading
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from app.models import Event
from app.models import Subscription
from conftest import SECRET
from conftest import compact
from conftest import load_sample
from conftest import make_test_app
from conftest import post_sample
from conftest import signed_headers
from webhooks.signature import fingerprint

URL = "/webhooks/eventsub"


def count_events(app) -> int:
    with app.app_context():
        from app.extensions import db

        return db.session.scalar(sa.select(sa.func.count()).select_from(Event))


def stored(app, message_id: str) -> Event:
    with app.app_context():
        from app.extensions import db

        return db.session.scalar(sa.select(Event).filter_by(message_id=message_id))


def test_answers_the_challenge_as_plain_text(client, app):
    response = post_sample(client, "webhook_callback_verification")
    challenge = load_sample("webhook_callback_verification")["challenge"]
    assert response.status_code == 200, response.text
    assert response.mimetype == "text/plain"
    assert response.get_data() == challenge.encode()


def test_challenge_marks_the_subscription_enabled(client, app):
    post_sample(client, "webhook_callback_verification")
    with app.app_context():
        from app.extensions import db

        subscription = db.session.scalar(sa.select(Subscription))
    assert subscription.status == "enabled"
    assert subscription.type == "channel.follow"


@pytest.mark.parametrize("signed_with", ["current", "previous"])
def test_a_challenge_records_which_secret_the_subscription_has(
    database_url, signed_with
):
    """Twitch signs the challenge with the subscription's own secret; without
    recording it, `cli.py subscriptions` called every such one outdated."""
    previous = "the-previous-secret-0123"
    app = make_test_app(database_url, EVENTSUB_SECRET_PREVIOUS=previous)
    secret = SECRET if signed_with == "current" else previous
    response = post_sample(
        app.test_client(), "webhook_callback_verification", secret=secret
    )
    assert response.status_code == 200, response.text
    with app.app_context():
        from app.extensions import db

        subscription = db.session.scalar(sa.select(Subscription))
    assert subscription.secret_fingerprint == fingerprint(secret)
    app.extensions["db"].engine.dispose()


def test_stores_a_notification_with_its_fields(client, app):
    response = post_sample(client, "channel.follow.v2", message_id="m-follow")
    event = stored(app, "m-follow")
    assert response.status_code == 204, response.text
    assert (event.event_type, event.event_version) == ("channel.follow", "2")
    assert (event.streamer_id, event.streamer_name) == ("1000001", "example_streamer")
    assert (event.user_id, event.user_name) == ("2000002", "星野さくら")


def test_keeps_the_whole_payload_and_both_times(client, app):
    post_sample(client, "channel.cheer.v1", message_id="m-cheer")
    event = stored(app, "m-cheer")
    assert event.payload["event"] == load_sample("channel.cheer.v1")["event"]
    assert event.payload["subscription"]["id"]
    assert event.occurred_at and event.received_at


def test_a_redelivery_is_stored_once_and_answered_204(client, app):
    first = post_sample(client, "channel.subscribe.v1", message_id="m-twice")
    second = post_sample(client, "channel.subscribe.v1", message_id="m-twice")
    assert (first.status_code, second.status_code) == (204, 204)
    assert count_events(app) == 1


def test_stores_unknown_subscription_types(client, app):
    body = load_sample("channel.follow.v2")
    body["subscription"]["type"] = "channel.brand_new_thing"
    raw = compact(body)
    response = client.post(URL, data=raw, headers=signed_headers(raw, message_id="u"))
    assert response.status_code == 204, response.text
    assert stored(app, "u").event_type == "channel.brand_new_thing"


def test_records_a_revocation_with_its_reason(client, app):
    response = post_sample(client, "revocation")
    with app.app_context():
        from app.extensions import db

        subscription = db.session.scalar(sa.select(Subscription))
    assert response.status_code == 204, response.text
    assert subscription.status == "authorization_revoked"
    assert subscription.revoked_at is not None


def test_ignores_an_unknown_message_type_with_204(client, app):
    response = post_sample(client, "channel.follow.v2", message_type="brand_new_kind")
    assert response.status_code == 204, response.text
    assert count_events(app) == 0


@pytest.mark.parametrize(
    "header",
    [
        "Twitch-Eventsub-Message-Id",
        "Twitch-Eventsub-Message-Timestamp",
        "Twitch-Eventsub-Message-Type",
        "Twitch-Eventsub-Message-Retry",
        "Twitch-Eventsub-Subscription-Type",
        "Twitch-Eventsub-Subscription-Version",
    ],
)
@pytest.mark.parametrize("value", [None, "", "  "], ids=["missing", "empty", "blank"])
def test_missing_or_empty_headers_get_400(client, header, value):
    raw = compact(load_sample("channel.follow.v2"))
    headers = signed_headers(raw)
    del headers[header]
    if value is not None:
        headers[header] = value
    response = client.post(URL, data=raw, headers=headers)
    assert response.status_code == 400, response.text
    assert header in response.text


@pytest.mark.parametrize("value", [None, "", "sha256=" + "0" * 64, "garbage"])
def test_bad_or_missing_signature_gets_403(client, app, value):
    raw = compact(load_sample("channel.follow.v2"))
    headers = signed_headers(raw)
    del headers["Twitch-Eventsub-Message-Signature"]
    if value is not None:
        headers["Twitch-Eventsub-Message-Signature"] = value
    response = client.post(URL, data=raw, headers=headers)
    assert response.status_code == 403, response.text
    assert count_events(app) == 0


def test_a_signature_made_with_another_secret_gets_403(client):
    raw = compact(load_sample("channel.follow.v2"))
    headers = signed_headers(raw, secret="someone-elses-secret")
    assert client.post(URL, data=raw, headers=headers).status_code == 403


def test_a_body_changed_after_signing_gets_403(client):
    raw = compact(load_sample("channel.follow.v2"))
    headers = signed_headers(raw)
    tampered = raw.replace(b"Viewer", b"Vlewer").replace(b"sakura", b"sakurA")
    assert client.post(URL, data=tampered, headers=headers).status_code == 403


@pytest.mark.parametrize(
    "age", [timedelta(minutes=11), timedelta(days=2), -timedelta(minutes=11)]
)
def test_stale_or_future_timestamps_are_refused(client, app, age):
    moment = datetime.now(UTC) - age
    timestamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    response = post_sample(client, "channel.follow.v2", timestamp=timestamp)
    assert response.status_code == 400, response.text
    assert count_events(app) == 0


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"{}", b'{"subscription": 1}'],
    ids=["broken", "array", "string", "not-utf8", "empty-object", "no-subscription"],
)
def test_malformed_bodies_with_a_valid_signature_get_400(client, raw):
    response = client.post(URL, data=raw, headers=signed_headers(raw))
    assert response.status_code == 400, response.text


def test_a_notification_without_an_event_gets_400(client, app):
    body = load_sample("channel.follow.v2")
    del body["event"]
    raw = compact(body)
    response = client.post(URL, data=raw, headers=signed_headers(raw))
    assert response.status_code == 400, response.text
    assert "event" in response.text


def test_a_challenge_without_a_challenge_gets_400(client):
    body = load_sample("webhook_callback_verification")
    del body["challenge"]
    raw = compact(body)
    headers = signed_headers(raw, "webhook_callback_verification")
    assert client.post(URL, data=raw, headers=headers).status_code == 400


def test_a_body_over_the_limit_gets_413(database_url):
    app = make_test_app(database_url, WEBHOOK_MAX_BYTES=1000)
    body = load_sample("channel.follow.v2")
    body["event"]["padding"] = "x" * 2000
    raw = compact(body)
    response = app.test_client().post(URL, data=raw, headers=signed_headers(raw))
    assert response.status_code == 413, response.text
    assert count_events(app) == 0


@pytest.mark.parametrize("path", ["/webhooks/eventsub/", "/webhooks/EventSub"])
def test_only_the_exact_path_answers_and_nothing_redirects(client, path):
    raw = compact(load_sample("channel.follow.v2"))
    response = client.post(path, data=raw, headers=signed_headers(raw))
    assert response.status_code == 404, response.text


def test_get_is_not_allowed(client):
    assert client.get(URL).status_code == 405


def test_batched_events_are_stored_one_row_each_and_once(client, app):
    body = load_sample("channel.follow.v2")
    event = body.pop("event")
    body["events"] = [{"id": "a", "data": event}, {"id": "b", "data": event}]
    raw = compact(body)
    for _ in range(2):
        headers = signed_headers(raw, message_id="batch")
        assert client.post(URL, data=raw, headers=headers).status_code == 204
    assert count_events(app) == 2


# The original brief's two queries, verbatim.
BRIEF_BY_STREAMER = (
    "SELECT COUNT(*) AS count_all, streamer_name FROM events GROUP BY streamer_name"
)
BRIEF_BY_TYPE = (
    "SELECT COUNT(*) AS count_all, event_type, streamer_name FROM events "
    "GROUP BY event_type, streamer_name"
)


def run_query(app, query: str) -> list[tuple]:
    with app.app_context():
        from app.extensions import db

        return sorted(tuple(row) for row in db.session.execute(sa.text(query)))


def test_the_briefs_two_queries_run_unchanged(client, app):
    for name in ("channel.follow.v2", "channel.cheer.v1", "channel.cheer.v1"):
        post_sample(client, name)
    assert run_query(app, BRIEF_BY_STREAMER) == [(3, "example_streamer")]
    assert run_query(app, BRIEF_BY_TYPE) == [
        (1, "channel.follow", "example_streamer"),
        (2, "channel.cheer", "example_streamer"),
    ]


def test_a_non_ascii_digit_in_retry_gets_400_not_500(client):
    raw = compact(load_sample("channel.follow.v2"))
    headers = signed_headers(raw)
    headers["Twitch-Eventsub-Message-Retry"] = "²"
    response = client.post(URL, data=raw, headers=headers)
    assert response.status_code == 400, response.text


def post_body(client, body: dict | bytes, message_id: str | None = None):
    raw = body if isinstance(body, bytes) else compact(body)
    headers = signed_headers(raw, message_id=message_id)
    return client.post(URL, data=raw, headers=headers)


def test_a_body_nested_too_deeply_gets_400_not_500(client):
    """Near Python's recursion limit, storing the JSON used to fail with 500."""
    raw = compact(load_sample("channel.follow.v2"))
    raw = raw[:-1] + b',"deep":' + b"[" * 100 + b"]" * 100 + b"}"
    response = post_body(client, raw)
    assert response.status_code == 400, response.text
    assert "nested" in response.text


def test_nul_characters_are_stored_as_replacement_characters(client, app):
    """PostgreSQL refuses NUL in text and JSONB; the event must still be kept."""
    body = load_sample("channel.cheer.v1")
    body["event"]["message"] = "a\x00b"
    body["event"]["user_name"] = "\x00Pixel"
    response = post_body(client, body, message_id="nul")
    event = stored(app, "nul")
    assert response.status_code == 204, response.text
    assert event.payload["event"]["message"] == "a\ufffdb"
    assert event.user_name == "\ufffdPixel"


def test_a_message_id_over_100_characters_gets_400(client):
    response = post_body(client, load_sample("channel.follow.v2"), "x" * 101)
    assert response.status_code == 400, response.text
    assert "longer than 100" in response.text


@pytest.mark.parametrize("message_id", ["caf\u00e9-1", "tab\there", "bell\x07"])
def test_a_message_id_that_is_not_printable_ascii_gets_400(client, app, message_id):
    response = post_body(client, load_sample("channel.follow.v2"), message_id)
    assert response.status_code == 400, response.text
    assert "must be printable ASCII" in response.text
    assert count_events(app) == 0


def test_oversized_fields_are_clipped_and_kept_whole_in_the_payload(client, app):
    body = load_sample("channel.follow.v2")
    body["event"]["user_name"] = "N" * 400
    body["event"]["user_id"] = 7 * 10**60
    body["event"]["broadcaster_user_login"] = "L" * 100
    body["subscription"]["version"] = 2
    response = post_body(client, body, message_id="big")
    event = stored(app, "big")
    assert response.status_code == 204, response.text
    assert (len(event.user_name), len(event.user_id), len(event.streamer_name)) == (
        255,
        40,
        40,
    )
    assert event.payload["event"]["user_name"] == "N" * 400
    assert event.event_version == "2"


@pytest.mark.parametrize(
    ("part", "value"),
    [
        ("condition", ["broadcaster_user_id", "1000001"]),
        ("condition", None),
        ("event_time", "0001-01-01T00:00:00+05:00"),
        ("event_time", "9999-12-31T23:59:59.999999999Z"),
        ("event_time", "not a time"),
        ("event_time", 12345),
    ],
)
def test_odd_but_valid_bodies_are_stored(client, app, part, value):
    body = load_sample("channel.follow.v2")
    if part == "condition":
        body["subscription"]["condition"] = value
    else:
        body["event"]["followed_at"] = value
    response = post_body(client, body, message_id="odd")
    assert response.status_code == 204, response.text
    assert stored(app, "odd") is not None


@pytest.mark.parametrize(
    "events",
    [[], ["text"], [{"id": "a", "data": "text"}], [{"id": "a"}], "not a list"],
    ids=["empty", "string-item", "string-data", "no-data", "not-a-list"],
)
def test_malformed_batches_get_400(client, events):
    body = load_sample("channel.follow.v2")
    del body["event"]
    body["events"] = events
    assert post_body(client, body).status_code == 400


@pytest.mark.parametrize(
    ("key", "value"),
    [("id", 123), ("id", ""), ("id", "s" * 101), ("type", None), ("type", ["x"])],
)
def test_a_subscription_without_a_usable_id_or_type_gets_400(client, key, value):
    body = load_sample("channel.follow.v2")
    body["subscription"][key] = value
    response = post_body(client, body)
    assert response.status_code == 400, response.text
    assert f"subscription {key}" in response.text


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"NaN", b"not valid JSON"),
        (b"-Infinity", b"not valid JSON"),
        (b"1e400", b"number out of range"),
        (b"9" * 5000, b"number out of range"),
    ],
    ids=["nan", "minus-infinity", "float-overflow", "5000-digits"],
)
def test_numbers_no_database_can_hold_get_400_not_500(client, app, value, reason):
    """NaN broke the API's JSON on SQLite; Postgres and int() raised 500."""
    raw = compact(load_sample("channel.cheer.v1"))
    raw = raw[:-1] + b',"extra":' + value + b"}"
    response = post_body(client, raw)
    assert response.status_code == 400, response.text
    assert reason in response.data
    assert count_events(app) == 0


def test_lone_surrogates_are_stored_as_replacement_characters(client, app):
    """A lone ``\\ud800`` escape is JSON no database stores; keep the event."""
    body = load_sample("channel.cheer.v1")
    body["event"]["message"] = "LONE"
    body["event"]["user_name"] = "PAIR"
    raw = compact(body).replace(b"LONE", b"a\\ud800b\\udc00")
    raw = raw.replace(b"PAIR", b"\\ud83d\\ude00")
    response = post_body(client, raw, message_id="surrogate")
    event = stored(app, "surrogate")
    assert response.status_code == 204, response.text
    assert event.payload["event"]["message"] == "a\ufffdb\ufffd"
    assert event.user_name == "\U0001f600"


def test_raw_surrogate_bytes_are_stored_as_replacement_characters(client, app):
    """The bytes of a lone surrogate, not valid UTF-8, yet read by the parser."""
    body = load_sample("channel.cheer.v1")
    body["event"]["message"] = "LONE"
    raw = compact(body).replace(b"LONE", b"a\xed\xa0\x80b")
    response = post_body(client, raw, message_id="raw-surrogate")
    assert response.status_code == 204, response.text
    assert stored(app, "raw-surrogate").payload["event"]["message"] == "a\ufffdb"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_body_in_another_encoding_than_utf8_is_refused(client, app, encoding):
    """Its NUL and surrogate checks would read the wrong bytes: never guess."""
    body = load_sample("channel.cheer.v1")
    body["event"]["message"] = "a\u0000b"
    raw = json.dumps(body).encode(encoding)
    response = post_body(client, raw, message_id=f"in-{encoding}")
    assert response.status_code == 400, response.text
    assert count_events(app) == 0


def test_a_utf8_body_with_a_byte_order_mark_is_stored(client, app):
    raw = b"\xef\xbb\xbf" + compact(load_sample("channel.cheer.v1"))
    response = post_body(client, raw, message_id="with-bom")
    assert response.status_code == 204, response.text
    assert stored(app, "with-bom").event_type == "channel.cheer"


def test_escaped_pairs_alone_are_stored_as_sent(client, app):
    """Emoji escaped as surrogate pairs, as ASCII-only JSON writers send them."""
    body = load_sample("channel.cheer.v1")
    body["event"]["message"] = "wow \U0001f600 \u00e9"
    raw = compact(body)
    assert b"\\ud83d\\ude00" not in raw
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert b"\\ud83d\\ude00" in raw
    response = post_body(client, raw, message_id="pairs")
    assert response.status_code == 204, response.text
    assert stored(app, "pairs").payload["event"]["message"] == "wow \U0001f600 \u00e9"


@pytest.mark.parametrize(
    ("key", "value", "kept"),
    [
        ("status", "s" * 200, "s" * 60),
        ("status", None, "unknown"),
        ("version", "9" * 50, "9" * 20),
        ("version", None, ""),
        ("cost", 10**30, None),
        ("cost", "abc", None),
        ("cost", True, None),
        ("condition", {"broadcaster_user_id": "1" * 100}, None),
        ("status", {"a": 1}, "unknown"),
        ("version", ["1"], ""),
    ],
    ids=[
        "long-status",
        "null-status",
        "long-version",
        "null-version",
        "huge-cost",
        "text-cost",
        "boolean-cost",
        "long-streamer-id",
        "object-status",
        "list-version",
    ],
)
def test_odd_revocations_are_recorded_not_answered_500(client, app, key, value, kept):
    """Postgres refused these columns' overflows; every revocation got 500."""
    body = load_sample("revocation")
    body["subscription"][key] = value
    raw = compact(body)
    response = client.post(URL, data=raw, headers=signed_headers(raw, "revocation"))
    with app.app_context():
        from app.extensions import db

        subscription = db.session.scalar(sa.select(Subscription))
    assert response.status_code == 204, response.text
    if key == "condition":
        assert subscription.streamer_id == "1" * 40
    else:
        assert getattr(subscription, key) == kept


def test_a_null_version_is_stored_as_empty_not_answered_500(client, app):
    body = load_sample("channel.follow.v2")
    body["subscription"]["version"] = None
    response = post_body(client, body, message_id="no-version")
    assert response.status_code == 204, response.text
    assert stored(app, "no-version").event_version == ""


def test_a_batch_whose_ids_would_not_fit_gets_400_not_500(client, app):
    """On Postgres '<100 characters>:0' overflowed message_id: 500, retried."""
    body = load_sample("channel.follow.v2")
    event = body.pop("event")
    body["events"] = [{"id": str(n), "data": event} for n in range(12)]
    too_long = post_body(client, body, message_id="m" * 98)
    fits = post_body(client, body, message_id="m" * 97)
    assert too_long.status_code == 400, too_long.text
    assert "too long for a batch of 12" in too_long.text
    assert fits.status_code == 204, fits.text
    assert count_events(app) == 12


def test_a_database_error_does_not_quote_the_stored_body(app):
    """The error's text is what the log shows; it held the payload verbatim."""
    row = {
        "id": "twice",
        "type": "channel.follow",
        "version": "2",
        "condition": {"note": "a-viewer-wrote-this"},
        "status": "enabled",
        "updated_at": datetime.now(UTC),
    }
    with app.app_context():
        from app.extensions import db

        db.session.execute(sa.insert(Subscription).values(row))
        with pytest.raises(sa.exc.IntegrityError) as caught:
            db.session.execute(sa.insert(Subscription).values(row))
        db.session.rollback()
    assert "a-viewer-wrote-this" not in str(caught.value)


def test_a_chunked_body_over_the_limit_gets_413_not_403(database_url):
    """Werkzeug cut a chunked body at the limit, so its signature failed."""
    app = make_test_app(database_url, WEBHOOK_MAX_BYTES=1000)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        statuses = []
        for padding in ("x" * 2000, "x" * 10):
            body = load_sample("channel.follow.v2")
            body["event"]["padding"] = padding
            raw = compact(body)
            connection = http.client.HTTPConnection("127.0.0.1", server.server_port)
            # An iterable body without a length is sent chunked.
            chunks = (raw[i : i + 300] for i in range(0, len(raw), 300))
            connection.request("POST", URL, body=chunks, headers=signed_headers(raw))
            statuses.append(connection.getresponse().status)
            connection.close()
    finally:
        server.shutdown()
    assert statuses == [413, 204]
    assert count_events(app) == 1


def test_subscription_fields_are_logged_on_one_short_line(client, caplog):
    """A status with newlines forged log lines; a long one was logged whole."""
    body = load_sample("revocation")
    body["subscription"]["id"] = "sub\nFAKE ERROR line"
    body["subscription"]["status"] = "user_removed\nFAKE ERROR line" + "x" * 5000
    raw = compact(body)
    response = client.post(URL, data=raw, headers=signed_headers(raw, "revocation"))
    assert response.status_code == 204, response.text
    logged = [r.getMessage() for r in caplog.records if "revoked" in r.getMessage()]
    assert len(logged) == 1
    assert "\n" not in logged[0] and len(logged[0]) < 200


def test_a_batch_of_thousands_is_stored_whole(client, app):
    """One INSERT of 5,500 rows passed Postgres's 65535 parameters: 500."""
    body = load_sample("channel.follow.v2")
    del body["event"]
    body["events"] = [{"id": str(n), "data": {"user_id": str(n)}} for n in range(5500)]
    response = post_body(client, body, message_id="thousands")
    assert response.status_code == 204, response.text
    assert count_events(app) == 5500
