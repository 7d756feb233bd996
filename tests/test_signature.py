"""Signatures and freshness, checked against known values."""

import json
from datetime import UTC
from datetime import datetime

import pytest

from conftest import SAMPLES
from webhooks.messages import Refused
from webhooks.messages import read_sent_at
from webhooks.signature import sign
from webhooks.signature import verify_signature

FOLLOW_V1_BODY = (
    b'{"subscription":{"id":"ae2ff348-e102-16be-a3eb-6830c1bf38d2","status":'
    b'"enabled","type":"channel.follow","version":"1","condition":'
    b'{"broadcaster_user_id":"44429626"},"transport":{"method":"webhook",'
    b'"callback":"null"},"created_at":"2021-02-19T23:47:00.7621315Z"},"event":'
    b'{"user_id":"28408015","user_login":"testFromUser","user_name":'
    b'"testFromUser","broadcaster_user_id":"44429626","broadcaster_user_login":'
    b'"44429626","broadcaster_user_name":"testBroadcaster"}}'
)


def test_signs_the_published_test_vector():
    """Vector from the twitch_api crate's tests (458-byte body)."""
    signature = sign(
        "secretabcd",
        "ae2ff348-e102-16be-a3eb-6830c1bf38d2",
        "2021-02-19T23:47:00.8091512Z",
        FOLLOW_V1_BODY,
    )
    assert len(FOLLOW_V1_BODY) == 458
    assert signature == (
        "sha256=d10f5bd9474b7ac7bd7105eb79c2d52768b4d0cd2a135982c3bf5a1d59a78823"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            (SAMPLES / "channel.follow.v2.json").read_bytes(),
            "bd6bd61411a008026c5d58412b74a59c394d7cc06041a6aa78f005ee5491b089",
        ),
        (
            json.dumps(
                json.loads((SAMPLES / "channel.follow.v2.json").read_bytes()),
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode(),
            "b7e4defff4f33598e51b69a62966f4f0875a18193964dbf74c80ef6e02c0f520",
        ),
    ],
    ids=["pretty-file-bytes", "compact-line"],
)
def test_signs_the_sample_vectors(body, expected):
    """The signature covers the exact bytes: whitespace changes it."""
    signature = sign(
        "fixture-secret-0123456789",
        "3f9c2a71-5d84-4e0b-9a6f-1c2d3e4f5a6b",
        "2026-03-14T18:05:42.130477809Z",
        body,
    )
    assert signature == "sha256=" + expected


def test_verify_accepts_any_configured_secret():
    signature = sign("second-secret-123", "id", "ts", b"{}")
    assert verify_signature(
        ("first-secret-123", "second-secret-123"), "id", "ts", b"{}", signature
    )


@pytest.mark.parametrize(
    "signature",
    [
        sign("other-secret-1234", "id", "ts", b"{}"),
        sign("first-secret-123", "id", "ts", b"{} "),
        sign("first-secret-123", "id", "ts", b"{}").upper(),
        sign("first-secret-123", "id", "ts", b"{}").removeprefix("sha256="),
        "sha256=",
        "sha256=é",
    ],
    ids=["wrong-secret", "other-body", "upper-case", "no-prefix", "empty", "non-ascii"],
)
def test_verify_rejects(signature):
    assert not verify_signature(("first-secret-123",), "id", "ts", b"{}", signature)


NOW = datetime(2026, 3, 14, 18, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-03-14T18:05:42.130477809Z",
        "2026-03-14T18:00:00.0000001Z",
        "2026-03-14T18:19:59Z",
        "2026-03-14T19:05:00+01:00",
    ],
    ids=["nanoseconds", "ten-minutes-old", "nine-minutes-ahead", "offset"],
)
def test_accepts_fresh_timestamps(timestamp):
    assert read_sent_at(timestamp, NOW) <= NOW.replace(minute=20)


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        ("2026-03-14T17:59:59.9Z", "older than 10 minutes"),
        ("2026-03-14T18:20:01Z", "ahead"),
        ("2026-03-14", "RFC 3339"),
        ("2026-03-14T18:05:42", "RFC 3339"),
        ("yesterday", "RFC 3339"),
    ],
    ids=["stale", "future", "date-only", "no-zone", "words"],
)
def test_refuses_stale_or_unreadable_timestamps(timestamp, reason):
    with pytest.raises(Refused) as caught:
        read_sent_at(timestamp, NOW)
    assert caught.value.status == 400
    assert reason in caught.value.reason
