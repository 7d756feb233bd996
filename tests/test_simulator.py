"""Tests for the Twitch simulator: messages, the trigger command, the runner."""

import json
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from app.catalogue import PUBLIC_TYPES
from app.simulator.commands import simulate
from app.simulator.commands import trigger
from app.simulator.messages import CAST
from app.simulator.messages import SAMPLE_TYPES
from app.simulator.messages import VIEWERS
from app.simulator.messages import Message
from app.simulator.messages import build_gifted_subs
from app.simulator.messages import build_headers
from app.simulator.messages import build_notification
from app.simulator.messages import build_revocation
from app.simulator.messages import build_verification
from app.simulator.messages import find_person
from app.simulator.messages import format_timestamp
from app.simulator.runner import Simulator
from webhooks.signature import sign
from webhooks.signature import verify_signature

SECRET = "test-secret-0123456789"
STREAMER = "night_owl_tv"

# Where each kind of event names the channel it belongs to, best first.
STREAMER_FIELDS = (
    "broadcaster_user_id",
    "broadcaster_id",
    "to_broadcaster_user_id",
    "user_id",
)


@dataclass
class Delivery:
    """One request as the test receiver saw it."""

    message_id: str
    message_type: str
    retry: int
    body: bytes
    signed: bool


class Receiver(ThreadingHTTPServer):
    """A tiny webhook receiver that checks signatures and records requests."""

    def __init__(self, address=("127.0.0.1", 0)):
        super().__init__(address, ReceiverHandler)
        self.status = 204
        self.deliveries: list[Delivery] = []
        self.arrived = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/webhooks/eventsub"

    def record(self, delivery: Delivery) -> None:
        with self.arrived:
            self.deliveries.append(delivery)
            self.arrived.notify_all()

    def wait_until(self, check, timeout: float = 5.0) -> list[Delivery]:
        """Wait until ``check(deliveries)`` holds, and return the deliveries."""
        with self.arrived:
            self.arrived.wait_for(lambda: check(self.deliveries), timeout)
            return list(self.deliveries)


class ReceiverHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        message_id = self.headers["Twitch-Eventsub-Message-Id"]
        signed = verify_signature(
            (SECRET,),
            message_id,
            self.headers["Twitch-Eventsub-Message-Timestamp"],
            body,
            self.headers["Twitch-Eventsub-Message-Signature"],
        )
        retry = int(self.headers["Twitch-Eventsub-Message-Retry"])
        message_type = self.headers["Twitch-Eventsub-Message-Type"]
        self.server.record(Delivery(message_id, message_type, retry, body, signed))
        if not signed:
            self.answer(403, b"")
        elif message_type == "webhook_callback_verification":
            self.answer(200, parse(body)["challenge"].encode())
        else:
            self.answer(self.server.status, b"")

    def answer(self, status: int, body: bytes):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass  # keeps pytest's output free of access log lines


def serve(server: Receiver):
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return thread


@pytest.fixture
def receiver():
    server = Receiver()
    serve(server)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port_url():
    """A URL on a local port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/webhooks/eventsub"


def parse(body: bytes) -> dict:
    return json.loads(body.decode("utf-8"))


def notifications(deliveries: list[Delivery]) -> list[Delivery]:
    return [d for d in deliveries if d.message_type == "notification"]


def challenged(deliveries: list[Delivery], streamer: str) -> set[str]:
    """The subscription types whose challenge was sent for ``streamer``."""
    streamer_id = find_person(streamer).id
    return {
        parse(d.body)["subscription"]["type"]
        for d in deliveries
        if d.message_type == "webhook_callback_verification"
        and streamer_id in parse(d.body)["subscription"]["condition"].values()
    }


def event_of(message: Message) -> dict:
    return parse(message.body)["event"]


def streamer_id_in(event: dict) -> str:
    return next(event[field] for field in STREAMER_FIELDS if field in event)


# Messages


@pytest.mark.parametrize("subscription_type", SAMPLE_TYPES)
def test_notification_belongs_to_the_streamer(subscription_type):
    message = build_notification(subscription_type, STREAMER)
    body = parse(message.body)
    streamer_id = find_person(STREAMER).id

    assert body["subscription"]["type"] == subscription_type
    assert streamer_id in body["subscription"]["condition"].values()
    assert "1000001" not in body["subscription"]["condition"].values()
    assert streamer_id_in(body["event"]) == streamer_id


@pytest.mark.parametrize("subscription_type", SAMPLE_TYPES)
def test_headers_carry_a_valid_signature(subscription_type):
    message = build_notification(subscription_type)
    timestamp = "2026-03-14T18:05:42.130477809Z"

    headers = build_headers(message, SECRET, timestamp)

    expected = sign(SECRET, message.message_id, timestamp, message.body)
    version = message.subscription_version
    assert headers["Twitch-Eventsub-Message-Signature"] == expected
    assert headers["Twitch-Eventsub-Subscription-Type"] == subscription_type
    assert headers["Twitch-Eventsub-Subscription-Version"] == version


def test_headers_name_all_seven_twitch_fields():
    message = build_notification("channel.follow")

    headers = build_headers(message, SECRET, retry=2)

    twitch_names = [name for name in headers if name.startswith("Twitch-Eventsub-")]
    assert len(twitch_names) == 7
    assert headers["Twitch-Eventsub-Message-Retry"] == "2"
    assert headers["Content-Type"] == "application/json"


def test_body_is_compact_utf8_json():
    message = build_notification("channel.follow")

    compact = json.dumps(parse(message.body), separators=(",", ":"), ensure_ascii=False)

    assert message.body == compact.encode("utf-8")
    assert message.message_type == "notification"


def test_every_message_gets_a_fresh_message_id_and_event_id():
    first = build_notification("channel.poll.begin")
    second = build_notification("channel.poll.begin")

    assert first.message_id != second.message_id
    assert event_of(first)["id"] != event_of(second)["id"]


def test_unknown_login_gets_a_stable_numeric_id():
    person = find_person("Night_Owl_TV")

    assert person == find_person("Night_Owl_TV")
    assert person.id.isdigit()
    assert person.id not in {member.id for member in CAST.values()}
    assert person.name == "Night_Owl_TV"


@pytest.mark.parametrize(
    "subscription_type", ["channel.cheer", "channel.subscription.gift"]
)
def test_anonymous_variant_has_null_user_fields(subscription_type):
    event = event_of(build_notification(subscription_type, variant="anonymous"))
    user = [event["user_id"], event["user_login"], event["user_name"]]

    assert event["is_anonymous"] is True
    assert user == [None, None, None]


def test_actor_is_a_viewer_from_the_cast():
    event = event_of(build_notification("channel.follow"))
    viewer = CAST[event["user_login"]]

    assert viewer in VIEWERS
    assert [event["user_id"], event["user_name"]] == [viewer.id, viewer.name]


def test_chat_notice_text_names_the_new_chatter():
    event = event_of(build_notification("channel.chat.notification"))

    assert event["system_message"].startswith(event["chatter_user_name"] + " ")


def test_raid_comes_from_another_cast_channel():
    event = event_of(build_notification("channel.raid", "other_streamer"))

    assert event["to_broadcaster_user_login"] == "other_streamer"
    assert event["from_broadcaster_user_login"] == "example_streamer"


def test_event_happens_now_and_keeps_its_durations():
    event = event_of(build_notification("channel.poll.begin"))
    started = datetime.fromisoformat(event["started_at"])
    ends = datetime.fromisoformat(event["ends_at"])

    assert abs((datetime.now(UTC) - started).total_seconds()) < 5
    assert (ends - started).total_seconds() == 180


def test_prediction_winner_points_to_one_of_its_new_outcomes():
    event = event_of(build_notification("channel.prediction.end"))
    outcome_ids = [outcome["id"] for outcome in event["outcomes"]]

    assert event["winning_outcome_id"] in outcome_ids
    assert "985faeef-090f-4431-b3e6-173529a883b2" not in outcome_ids


def test_a_gift_is_followed_by_one_gifted_sub_per_recipient():
    gift = build_notification("channel.subscription.gift", STREAMER, variant="default")
    total, tier = event_of(gift)["total"], event_of(gift)["tier"]

    subs = [event_of(message) for message in build_gifted_subs(gift)]

    assert len(subs) == total
    assert len({sub["user_login"] for sub in subs}) == total
    assert {(sub["is_gift"], sub["tier"]) for sub in subs} == {(True, tier)}
    assert event_of(gift)["user_login"] not in {sub["user_login"] for sub in subs}


def test_unknown_type_is_refused():
    with pytest.raises(ValueError, match="accepted: "):
        build_notification("channel.nope")


@pytest.mark.parametrize(
    ("nanoseconds", "expected"),
    [
        (1_773_511_542_130_477_809, "2026-03-14T18:05:42.130477809Z"),
        (1_773_511_542_130_000_000, "2026-03-14T18:05:42.13Z"),
        (1_773_511_542_000_000_000, "2026-03-14T18:05:42Z"),
    ],
    ids=["nine-digits", "trailing-zeros-dropped", "whole-second"],
)
def test_timestamps_are_written_like_twitch(nanoseconds, expected):
    assert format_timestamp(nanoseconds) == expected


def test_verification_carries_a_challenge_for_a_pending_subscription():
    message = build_verification("channel.follow", STREAMER, challenge="abc123")
    body = parse(message.body)
    pending = "webhook_callback_verification_pending"

    assert message.message_type == "webhook_callback_verification"
    assert body["challenge"] == "abc123"
    assert body["subscription"]["status"] == pending


def test_revocation_gives_the_reason_and_no_event():
    message = build_revocation("stream.online", STREAMER, "user_removed")
    body = parse(message.body)

    assert message.message_type == "revocation"
    assert body["subscription"]["status"] == "user_removed"
    assert "event" not in body


def test_revocation_and_notification_share_the_subscription_id():
    notification = parse(build_notification("stream.online", STREAMER).body)
    revocation = parse(build_revocation("stream.online", STREAMER).body)

    assert notification["subscription"]["id"] == revocation["subscription"]["id"]


def test_revocation_refuses_an_unknown_reason():
    with pytest.raises(ValueError, match="authorization_revoked"):
        build_revocation("stream.online", STREAMER, "bored")


# The trigger command


def run_trigger(*args, env=None):
    return CliRunner().invoke(trigger, list(args), env=env)


FOLLOW = "channel.follow"
TO = ["--to", "http://localhost:5000/webhooks/eventsub"]
KEY = ["--secret", SECRET]


@pytest.mark.parametrize(
    ("args", "accepted"),
    [
        (["channel.nope", *TO, *KEY], "accepted types: "),
        ([FOLLOW, *TO, *KEY, "--streamer", "abc"], "4 to 25 letters"),
        ([FOLLOW, *TO, *KEY, "--streamer", "bad-name!"], "4 to 25 letters"),
        ([FOLLOW, *TO, *KEY, "--count", "0"], "1<=x<=10000"),
        ([FOLLOW, *TO, *KEY, "--count", "10001"], "1<=x<=10000"),
        ([FOLLOW, *TO, "--secret", "short"], "10 to 100 ASCII"),
        ([FOLLOW, *TO, "--secret", "ß" * 12], "10 to 100 ASCII"),
        ([FOLLOW, "--to", "ftp://localhost/x", *KEY], "http:// or https://"),
        ([FOLLOW, "--to", "localhost:5000", *KEY], "http:// or https://"),
        ([FOLLOW, "--to", "http://[::1/x", *KEY], "http:// or https://"),
        ([FOLLOW, "--to", "http://localhost:99999/x", *KEY], "Port out of range"),
        ([FOLLOW, *KEY], "Missing option '--to'"),
        ([FOLLOW, *TO], "Missing option '--secret'"),
        ([*TO, *KEY], "Missing argument 'TYPE'"),
    ],
    ids=[
        "unknown-type",
        "short-login",
        "login-with-symbols",
        "count-zero",
        "count-too-high",
        "short-secret",
        "non-ascii-secret",
        "ftp-url",
        "url-without-scheme",
        "broken-ipv6-url",
        "port-out-of-range",
        "no-url",
        "no-secret",
        "no-type",
    ],
)
def test_trigger_rejects_bad_input(args, accepted, monkeypatch):
    """A broken IPv6 URL was a traceback, a port over 65535 exit 1."""
    monkeypatch.delenv("EVENTSUB_SECRET", raising=False)

    result = run_trigger(*args)

    assert result.exit_code == 2, result.output
    assert accepted in result.output


def test_trigger_never_echoes_a_bad_secret():
    result = run_trigger(FOLLOW, *TO, "--secret", "hunter2!")

    assert result.exit_code == 2
    assert "hunter2" not in result.output


def test_trigger_lists_types_with_versions():
    result = run_trigger("--list")

    assert result.exit_code == 0, result.output
    assert "channel.follow v2" in result.output.splitlines()
    assert len(result.output.splitlines()) == len(SAMPLE_TYPES)


def test_trigger_sends_signed_notifications(receiver):
    result = run_trigger(FOLLOW, "--to", receiver.url, *KEY, "--count", "3")
    statuses = [line.split()[1] for line in result.output.splitlines()]

    assert result.exit_code == 0, result.output
    assert [d.signed for d in receiver.deliveries] == [True, True, True]
    assert statuses == ["204", "204", "204"]


def test_trigger_reads_the_secret_from_the_environment(receiver):
    env = {"EVENTSUB_SECRET": SECRET}

    result = run_trigger("stream.online", "--to", receiver.url, env=env)

    assert result.exit_code == 0, result.output
    assert receiver.deliveries[0].signed


def test_trigger_fails_on_a_non_2xx_answer(receiver):
    receiver.status = 403

    result = run_trigger("channel.cheer", "--to", receiver.url, *KEY)

    assert result.exit_code == 1
    assert " 403" in result.output


def test_trigger_reports_a_refused_connection_in_one_line(closed_port_url):
    result = run_trigger(FOLLOW, "--to", closed_port_url, *KEY)

    assert result.exit_code == 1
    assert "cannot connect" in result.output
    assert "Traceback" not in result.output


# The simulator


@pytest.fixture
def simulators():
    started: list[Simulator] = []
    yield started
    for simulator in started:
        simulator.stop()


def start_simulator(simulators, url, **options) -> Simulator:
    simulator = Simulator(url, SECRET, **options)
    simulators.append(simulator)
    simulator.start()
    return simulator


def test_simulator_sends_signed_notifications(receiver, simulators):
    simulator = start_simulator(simulators, receiver.url, rate=200)

    deliveries = receiver.wait_until(lambda seen: len(seen) >= 10)
    simulator.stop()

    assert len(deliveries) >= 10
    assert all(delivery.signed for delivery in deliveries)
    assert not simulator.running


def test_simulator_redelivers_with_the_same_id_and_body(receiver, simulators):
    start_simulator(simulators, receiver.url, rate=200, redelivery_chance=0.5)

    deliveries = receiver.wait_until(lambda seen: any(d.retry for d in seen))
    again = next(d for d in deliveries if d.retry)
    first = next(d for d in deliveries if d.message_id == again.message_id)

    assert first.retry == 0
    assert first.body == again.body


def test_simulator_sends_for_the_given_streamers(receiver, simulators):
    streamer_id = find_person(STREAMER).id
    start_simulator(simulators, receiver.url, rate=200, streamers=(STREAMER,))

    deliveries = receiver.wait_until(lambda seen: len(seen) >= 5)

    for delivery in deliveries:
        condition = parse(delivery.body)["subscription"]["condition"]
        assert streamer_id in condition.values()


def test_simulator_at_rate_zero_waits_for_set_rate(receiver, simulators):
    simulator = start_simulator(simulators, receiver.url, rate=0)

    time.sleep(0.3)
    assert notifications(receiver.deliveries) == []

    simulator.set_rate(200)
    sent = receiver.wait_until(lambda seen: len(notifications(seen)) >= 3)
    assert len(notifications(sent)) >= 3


def test_simulator_first_verifies_every_type_of_a_connected_channel(
    receiver, simulators
):
    start_simulator(simulators, receiver.url, rate=0)

    expected = len(SAMPLE_TYPES) + len(set(PUBLIC_TYPES) & set(SAMPLE_TYPES))
    deliveries = receiver.wait_until(lambda seen: len(seen) >= expected)

    assert challenged(deliveries, "example_streamer") == set(SAMPLE_TYPES)
    assert challenged(deliveries, "other_streamer") == set(PUBLIC_TYPES)


def test_simulator_first_takes_every_channel_live(receiver, simulators):
    start_simulator(simulators, receiver.url, rate=100, redelivery_chance=0)

    sent = receiver.wait_until(lambda seen: len(notifications(seen)) >= 4)

    first = [parse(d.body)["subscription"]["type"] for d in notifications(sent)[:4]]
    assert first == ["stream.online", "channel.update"] * 2


def test_simulator_sends_only_public_types_to_an_unconnected_channel(
    receiver, simulators
):
    other_id = find_person("other_streamer").id
    start_simulator(simulators, receiver.url, rate=500, streamers=("other_streamer",))

    deliveries = receiver.wait_until(lambda seen: len(notifications(seen)) >= 30)

    types = {parse(d.body)["subscription"]["type"] for d in notifications(deliveries)}
    assert types <= set(PUBLIC_TYPES)
    assert all(
        other_id in parse(d.body)["subscription"]["condition"].values()
        for d in deliveries
    )


def first_gift_and_what_follows(deliveries: list[Delivery]):
    """The first gift and the notifications after it, once all its subs came."""
    bodies = [parse(d.body) for d in notifications(deliveries)]
    gifts = [
        index
        for index, body in enumerate(bodies)
        if body["subscription"]["type"] == "channel.subscription.gift"
    ]
    if not gifts:
        return None
    gift = bodies[gifts[0]]
    following = bodies[gifts[0] + 1 : gifts[0] + 1 + gift["event"]["total"]]
    return (gift, following) if len(following) == gift["event"]["total"] else None


def test_simulator_follows_a_gift_with_its_gifted_subs(receiver, simulators):
    start_simulator(
        simulators,
        receiver.url,
        rate=1000,
        streamers=("example_streamer",),
        redelivery_chance=0,
        rng=random.Random(3),
    )

    sent = receiver.wait_until(first_gift_and_what_follows)
    gift, following = first_gift_and_what_follows(sent)

    tier = gift["event"]["tier"]
    assert {body["subscription"]["type"] for body in following} == {"channel.subscribe"}
    assert {(b["event"]["is_gift"], b["event"]["tier"]) for b in following} == {
        (True, tier)
    }


def test_simulator_keeps_a_polls_id_from_begin_to_end(receiver, simulators):
    start_simulator(
        simulators,
        receiver.url,
        rate=1000,
        streamers=("example_streamer",),
        redelivery_chance=0,
        rng=random.Random(6),
    )

    def polls(seen):
        return [
            parse(d.body)["event"]
            for d in notifications(seen)
            if parse(d.body)["subscription"]["type"].startswith("channel.poll.")
        ]

    found = polls(receiver.wait_until(lambda seen: len(polls(seen)) >= 8))
    assert len({event["id"] for event in found}) < len(found)


def test_simulator_waits_for_the_server_to_come_up(simulators, caplog):
    caplog.set_level(logging.DEBUG, logger="app.simulator.runner")
    server = Receiver()
    address = server.server_address
    server.server_close()  # nothing listens there until the server starts below

    start_simulator(simulators, server.url, rate=50)
    time.sleep(0.3)
    server = Receiver(address)
    serve(server)
    try:
        deliveries = server.wait_until(lambda seen: len(seen) >= 2)
    finally:
        server.shutdown()
        server.server_close()

    connected = [r for r in caplog.records if "connected to" in r.getMessage()]
    assert len(deliveries) >= 2
    assert [record.levelno for record in connected] == [logging.INFO]


def test_simulator_says_once_that_it_waits_for_the_server(
    simulators, closed_port_url, caplog
):
    caplog.set_level(logging.INFO, logger="app.simulator.runner")

    start_simulator(simulators, closed_port_url, rate=50)
    time.sleep(0.5)

    waiting = [r for r in caplog.records if "waiting for" in r.getMessage()]
    assert len(waiting) == 1


def test_simulate_stops_when_the_receiver_refuses_its_signature(receiver):
    """A wrong --secret once verified nothing and sent refused events forever."""
    wrong = ["--secret", "not-the-receivers-secret"]

    result = CliRunner().invoke(simulate, ["--to", receiver.url, *wrong])

    assert result.exit_code == 1, result.output
    assert "not the receiver's EVENTSUB_SECRET" in result.output
    assert len(receiver.deliveries) == 1


def test_simulator_never_logs_secrets(receiver, simulators, caplog):
    caplog.set_level(logging.DEBUG, logger="app.simulator.runner")
    simulator = start_simulator(simulators, receiver.url, rate=200)

    receiver.wait_until(lambda seen: len(seen) >= 5)
    simulator.stop()

    assert SECRET not in caplog.text
    assert "sha256=" not in caplog.text


@pytest.mark.parametrize(
    "rate", [-1, 1001, float("nan")], ids=["negative", "huge", "nan"]
)
def test_simulator_refuses_a_rate_out_of_range(rate):
    with pytest.raises(ValueError, match="events per second"):
        Simulator("http://localhost:5000", SECRET, rate=rate)


def test_simulator_stops_at_once_while_paused(receiver, simulators):
    simulator = start_simulator(simulators, receiver.url, rate=0)

    started = time.monotonic()
    simulator.stop(timeout=5)

    assert not simulator.running
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("args", "accepted"),
    [
        (["--rate", "nan"], "at most 1000"),
        (["--rate", "0"], "0<x<=1000"),
        (["--to", "http://[::1/x"], "http:// or https://"),
    ],
    ids=["nan-rate", "zero-rate", "broken-ipv6-url"],
)
def test_simulate_rejects_bad_input(args, accepted):
    """--rate nan passed FloatRange and ended in a traceback."""
    args = [*TO, *KEY, *args] if args[0] != "--to" else [*args, *KEY]
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 2, result.output
    assert accepted in result.output
