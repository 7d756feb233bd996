"""The live feed websocket, over a real HTTP server."""

import json
import time

import pytest
import requests
import websocket

from conftest import compact
from conftest import load_sample
from conftest import signed_headers


def post_follow(server, message_id: str, login: str = "example_streamer") -> None:
    body = load_sample("channel.follow.v2")
    body["event"]["broadcaster_user_login"] = login
    raw = compact(body)
    headers = signed_headers(raw, message_id=message_id)
    response = requests.post(
        server.url + "/webhooks/eventsub", data=raw, headers=headers, timeout=5
    )
    assert response.status_code == 204, response.text


def connect(server, query: str = "") -> websocket.WebSocket:
    url = server.url.replace("http://", "ws://") + "/ws/streamers/example_streamer"
    return websocket.create_connection(url + query, timeout=5)


def receive_events(ws) -> list[dict]:
    while True:
        frame = json.loads(ws.recv())
        if frame["kind"] == "events":
            return frame["events"]


def test_opens_with_the_latest_50_oldest_first(live_server):
    for index in range(55):
        post_follow(live_server, f"m{index:02}")
    ws = connect(live_server)
    events = receive_events(ws)
    ws.close()
    assert len(events) == 50
    assert [events[0]["message_id"], events[-1]["message_id"]] == ["m05", "m54"]


def test_pushes_a_new_event_within_a_second(live_server):
    ws = connect(live_server)
    assert receive_events(ws) == []
    started = time.monotonic()
    post_follow(live_server, "fresh")
    events = receive_events(ws)
    ws.close()
    assert [e["message_id"] for e in events] == ["fresh"]
    assert time.monotonic() - started < 1.0


def test_resumes_after_a_cursor_without_gap_or_duplicate(live_server):
    for index in range(3):
        post_follow(live_server, f"before{index}")
    ws = connect(live_server)
    cursor = receive_events(ws)[-1]["cursor"]
    ws.close()
    post_follow(live_server, "missed1")
    post_follow(live_server, "missed2")
    ws = connect(live_server, f"?after={cursor}")
    events = receive_events(ws)
    ws.close()
    assert [e["message_id"] for e in events] == ["missed1", "missed2"]


def test_a_redelivery_is_never_pushed_twice(live_server):
    ws = connect(live_server)
    receive_events(ws)
    post_follow(live_server, "once")
    post_follow(live_server, "once")
    post_follow(live_server, "next")
    first = receive_events(ws)
    rest = [] if len(first) > 1 else receive_events(ws)
    ws.close()
    assert [e["message_id"] for e in first + rest] == ["once", "next"]


def test_other_streamers_events_stay_out(live_server):
    ws = connect(live_server)
    receive_events(ws)
    post_follow(live_server, "elsewhere", login="other_streamer")
    post_follow(live_server, "here")
    events = receive_events(ws)
    ws.close()
    assert [e["message_id"] for e in events] == ["here"]


@pytest.mark.parametrize(
    "path",
    [
        "/ws/streamers/no",
        "/ws/streamers/example_streamer?after=x",
        "/ws/streamers/example_streamer?after=9999999999999999999",
    ],
)
def test_bad_requests_are_closed_with_a_reason(live_server, path):
    url = live_server.url.replace("http://", "ws://") + path
    ws = websocket.create_connection(url, timeout=5)
    opcode, data = ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(data[:2], "big") == 1008


@pytest.mark.parametrize("missing", ["Sec-WebSocket-Key", "Sec-WebSocket-Version"])
def test_an_upgrade_without_the_handshake_headers_gets_400_not_500(
    live_server, missing
):
    """wsproto's RemoteProtocolError escaped to the 500 handler."""
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    del headers[missing]
    response = requests.get(
        live_server.url + "/ws/streamers/example_streamer", headers=headers, timeout=5
    )
    assert response.status_code == 400, response.text
    assert missing in response.text


def test_an_upgrade_with_non_ascii_extensions_opens_without_them(live_server):
    """wsproto decoded the extensions header as ASCII: UnicodeDecodeError, 500.

    Feeds negotiate no extension (app/live.py drops the header), so the page
    gets a plain websocket.
    """
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Extensions": "permessage-deflate; x=\u00ff".encode("latin-1"),
    }
    response = requests.get(
        live_server.url + "/ws/streamers/example_streamer", headers=headers, timeout=5
    )
    assert response.status_code == 101, response.text
    assert "Sec-WebSocket-Extensions" not in response.headers
