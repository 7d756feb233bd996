"""EventSub messages built from the sample bodies in ``samples/``.

A notification built here is a copy of one sample with fresh ids, times set
to now, the channel of our choice as broadcaster, a viewer from the cast as
the actor and varied amounts. Its body is serialised the way Twitch sends
it: one compact line of UTF-8 JSON. ``build_headers`` signs it.
"""

import copy
import hashlib
import json
import random
import re
import secrets
import string
import time
import uuid
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

from webhooks.signature import sign

SAMPLES_DIR = Path(__file__).parent / "samples"

DEFAULT_VARIANT = "default"

VERIFICATION_PENDING = "webhook_callback_verification_pending"

# Statuses Twitch gives as the reason in a webhook revocation message.
REVOCATION_REASONS = (
    "authorization_revoked",
    "chat_user_banned",
    "moderator_removed",
    "notification_failures_exceeded",
    "user_removed",
    "version_removed",
)


@dataclass(frozen=True)
class Person:
    """A Twitch user as EventSub names one: id, login and display name."""

    id: str
    login: str
    name: str


@dataclass(frozen=True)
class Message:
    """One EventSub message: what its headers say, and its exact body."""

    message_id: str
    message_type: str
    subscription_type: str
    subscription_version: str
    body: bytes


STREAMERS = (
    Person("1000001", "example_streamer", "Example_Streamer"),
    Person("1000002", "other_streamer", "Other_Streamer"),
)
# The second sample channel plays a streamer who has not connected
# streamfeed: Twitch sends it only the types that need no consent.
UNCONNECTED_STREAMERS = ("other_streamer",)
VIEWERS = (
    Person("2000001", "viewer_one", "Viewer_One"),
    Person("2000002", "sakura_hoshino", "星野さくら"),
    Person("2000003", "pixel_pioneer", "Pixel_Pioneer"),
    Person("2000004", "quiet_lurker", "quiet_lurker"),
    Person("2000005", "troll_account_99", "Troll_Account_99"),
)
# Made-up viewers who receive gifted subs, beyond the regular cast.
RECIPIENT_WORDS = (
    ("lunar", "pixel", "cozy", "swift", "quiet", "neon", "mossy", "amber"),
    ("fox", "otter", "comet", "lantern", "falcon", "maple", "badger", "koi"),
)
MODERATOR = Person("3000001", "mod_maria", "Mod_Maria")
CHAT_BOT = Person("4000001", "example_feed_bot", "Example_Feed_Bot")
_EVERYONE = (*STREAMERS, *VIEWERS, MODERATOR, CHAT_BOT)
CAST = {person.login: person for person in _EVERYONE}

# Every sample belongs to the first streamer; raids and shoutouts name the
# second one as the other channel.
_SAMPLE_STREAMER, _SAMPLE_PEER = STREAMERS

# Fields that name the acting viewer, as opposed to a channel or a moderator.
_ACTOR_PREFIXES = ("user_", "chatter_user_")

# Event fields holding ids that are new for every event. Choice and outcome
# ids are refreshed too, and every reference to an old id follows.
_FRESH_ID_FIELDS = ("id", "campaign_id", "message_id")

# The field that says when an event happened, best first. The other times of
# the event keep their distance to it.
_EVENT_TIME_FIELDS = (
    "ended_at",
    "stopped_at",
    "locked_at",
    "banned_at",
    "followed_at",
    "redeemed_at",
    "started_at",
)

_UUID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")
_BASE62 = string.digits + string.ascii_letters
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Subscriptions look as if they had been created five days before this
# process started, like a deployment that has been running for a while.
_SUBSCRIBED_NS = time.time_ns() - 5 * 86_400 * 1_000_000_000
_SUBSCRIPTION_NAMESPACE = uuid.UUID("6b479d32-afe8-4c00-9abf-e73ca8692ab1")


def _load_samples() -> dict[str, dict[str, dict]]:
    """Read the notification samples, by subscription type and variant."""
    samples: dict[str, dict[str, dict]] = {}
    for path in sorted(SAMPLES_DIR.glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        if "event" not in body:
            continue  # verification and revocation bodies are built, not copied

        subscription = body["subscription"]
        prefix = f"{subscription['type']}.v{subscription['version']}"
        variant = path.stem.removeprefix(prefix).lstrip(".") or DEFAULT_VARIANT
        samples.setdefault(subscription["type"], {})[variant] = body
    return samples


_SAMPLES = _load_samples()

# Subscription type -> version, for every type that has a sample.
SAMPLE_TYPES = {
    name: variants[DEFAULT_VARIANT]["subscription"]["version"]
    for name, variants in _SAMPLES.items()
}

# Subscription type -> its sample variants, such as "anonymous" or "timeout".
SAMPLE_VARIANTS = {name: tuple(variants) for name, variants in _SAMPLES.items()}


def find_person(login: str) -> Person:
    """Return the cast member with ``login``, or a stable stand-in for others.

    A stand-in's id is derived from the login, so every run gives one
    made-up channel the same id; its display name is the login as given.
    """
    person = CAST.get(login.lower())
    if person is not None:
        return person

    # Nine digits never clash with the seven-digit ids of the cast.
    digest = hashlib.sha256(login.lower().encode()).digest()
    number = int.from_bytes(digest[:8], "big") % 900_000_000 + 100_000_000
    return Person(str(number), login.lower(), login)


def format_timestamp(nanoseconds: int) -> str:
    """Format a time, in nanoseconds since the epoch, as Twitch writes it."""
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")

    # Twitch writes times with Go, which drops the trailing zeros of the
    # fraction, so its width varies from message to message.
    digits = f"{fraction:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


def now_timestamp() -> str:
    """Return the current time as Twitch writes it."""
    return format_timestamp(time.time_ns())


def build_notification(
    subscription_type: str,
    streamer: str = _SAMPLE_STREAMER.login,
    *,
    variant: str | None = None,
    rng: random.Random | None = None,
    event_id: str | None = None,
) -> Message:
    """Build a notification of ``subscription_type`` for the channel ``streamer``.

    ``variant`` names one of ``SAMPLE_VARIANTS[subscription_type]``; without
    it one is picked at random, the plain sample most often. ``event_id``
    keeps the event's own id, so the begin, progress and end of one poll
    (or prediction, hype train, goal, campaign) name the same one. Raises
    ``ValueError`` for a type or variant that has no sample.
    """
    rng = rng or random.Random()
    body = _build_body(subscription_type, streamer, variant, rng)
    if event_id is not None and "id" in body["event"]:
        body["event"]["id"] = event_id
    return _message("notification", body)


def build_gifted_subs(gift: Message, rng: random.Random | None = None) -> list[Message]:
    """Build the ``channel.subscribe`` notifications that follow a gift.

    Twitch sends one per recipient, with ``is_gift`` set and the gift's
    tier, right after the ``channel.subscription.gift`` that announced
    them. Raises ``ValueError`` when ``gift`` is not such a notification.
    """
    if gift.subscription_type != "channel.subscription.gift":
        raise ValueError(f"gift must be a gift notification; got {gift!r}")

    rng = rng or random.Random()
    event = json.loads(gift.body)["event"]
    recipients = _pick_recipients(int(event["total"]), event["user_login"], rng)
    return [
        _gifted_sub(event["broadcaster_user_login"], recipient, event["tier"], rng)
        for recipient in recipients
    ]


def _gifted_sub(streamer: str, recipient: Person, tier: str, rng) -> Message:
    body = _build_body("channel.subscribe", streamer, DEFAULT_VARIANT, rng)
    _put_person(body["event"], "user_", recipient)
    body["event"]["tier"] = tier
    body["event"]["is_gift"] = True
    return _message("notification", body)


def _pick_recipients(count: int, gifter: str | None, rng) -> list[Person]:
    """Return ``count`` different viewers, never the gifter."""
    pool = [viewer for viewer in VIEWERS if viewer.login != gifter]
    rng.shuffle(pool)
    taken = {viewer.login for viewer in pool}
    while len(pool) < count:
        first, second = (rng.choice(words) for words in RECIPIENT_WORDS)
        login = f"{first}_{second}{rng.randint(1, 999)}"
        if login not in taken:
            taken.add(login)
            pool.append(find_person(login))
    return pool[:count]


def _build_body(subscription_type: str, streamer: str, variant, rng) -> dict:
    """Return a notification body of a sample, recast for ``streamer``."""
    body = _pick_sample(subscription_type, variant, rng)
    target = find_person(streamer)

    _cast_people(body["event"], target, rng)
    _refresh_ids(body["event"], rng)
    _move_to_now(body["event"])
    _VARIATIONS.get(subscription_type, _keep)(body["event"], rng)

    _rewrite_subscription(body["subscription"], target, "enabled")
    return body


def build_verification(
    subscription_type: str = "channel.follow",
    streamer: str = _SAMPLE_STREAMER.login,
    *,
    challenge: str | None = None,
) -> Message:
    """Build the challenge Twitch sends to the callback of a new subscription."""
    pending = VERIFICATION_PENDING
    subscription = _subscription_for(subscription_type, streamer, pending)

    # A subscription is verified right after it is created.
    subscription["created_at"] = now_timestamp()
    body = {
        "challenge": challenge or secrets.token_urlsafe(27),
        "subscription": subscription,
    }
    return _message("webhook_callback_verification", body)


def build_revocation(
    subscription_type: str,
    streamer: str = _SAMPLE_STREAMER.login,
    reason: str = "authorization_revoked",
) -> Message:
    """Build the message Twitch sends when it ends a subscription for ``reason``.

    Raises ``ValueError`` when ``reason`` is not in ``REVOCATION_REASONS``.
    """
    if reason not in REVOCATION_REASONS:
        accepted = ", ".join(REVOCATION_REASONS)
        raise ValueError(f"reason must be one of {accepted}; got {reason!r}")

    subscription = _subscription_for(subscription_type, streamer, reason)
    return _message("revocation", {"subscription": subscription})


def build_headers(
    message: Message,
    secret: str,
    timestamp: str | None = None,
    *,
    retry: int = 0,
) -> dict[str, str]:
    """Return the headers Twitch sends with ``message``, signed with ``secret``.

    ``timestamp`` defaults to now; ``retry`` counts earlier deliveries.
    """
    timestamp = timestamp or now_timestamp()
    signature = sign(secret, message.message_id, timestamp, message.body)
    return {
        "Content-Type": "application/json",
        "Twitch-Eventsub-Message-Id": message.message_id,
        "Twitch-Eventsub-Message-Retry": str(retry),
        "Twitch-Eventsub-Message-Type": message.message_type,
        "Twitch-Eventsub-Message-Signature": signature,
        "Twitch-Eventsub-Message-Timestamp": timestamp,
        "Twitch-Eventsub-Subscription-Type": message.subscription_type,
        "Twitch-Eventsub-Subscription-Version": message.subscription_version,
    }


def _pick_sample(
    subscription_type: str, variant: str | None, rng: random.Random | None = None
) -> dict:
    """Return a private copy of one sample body of ``subscription_type``."""
    variants = _SAMPLES.get(subscription_type)
    if variants is None:
        accepted = ", ".join(SAMPLE_TYPES)
        raise ValueError(
            f"subscription type {subscription_type!r} has no sample; "
            f"accepted: {accepted}"
        )

    if variant is None:
        names = tuple(variants)
        weights = [3 if name == DEFAULT_VARIANT else 1 for name in names]
        variant = (rng or random).choices(names, weights)[0]

    if variant not in variants:
        accepted = ", ".join(variants)
        raise ValueError(f"variant must be one of {accepted}; got {variant!r}")
    return copy.deepcopy(variants[variant])


def _subscription_for(subscription_type: str, streamer: str, status: str) -> dict:
    """Return the subscription of a sample, rewritten for ``streamer``."""
    sample = _pick_sample(subscription_type, DEFAULT_VARIANT)
    subscription = sample["subscription"]
    _rewrite_subscription(subscription, find_person(streamer), status)
    return subscription


def _message(message_type: str, body: dict) -> Message:
    """Wrap ``body`` in a new message, serialised as Twitch sends it."""
    subscription = body["subscription"]
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return Message(
        message_id=str(uuid.uuid4()),
        message_type=message_type,
        subscription_type=subscription["type"],
        subscription_version=subscription["version"],
        body=data.encode("utf-8"),
    )


def _rewrite_subscription(subscription: dict, target: Person, status: str) -> None:
    """Point a sample subscription at ``target`` and give it ``status``."""
    condition = subscription["condition"]
    for key, value in condition.items():
        if value == _SAMPLE_STREAMER.id:
            condition[key] = target.id

    # The same type, version and condition always give the same id, as one
    # subscription on Twitch keeps its id for every message it delivers.
    fingerprint = json.dumps(condition, sort_keys=True)
    name = f"{subscription['type']}.v{subscription['version']}:{fingerprint}"
    subscription["id"] = str(uuid.uuid5(_SUBSCRIPTION_NAMESPACE, name))
    subscription["status"] = status
    subscription["created_at"] = format_timestamp(_SUBSCRIBED_NS)


def _cast_people(event: dict, target: Person, rng: random.Random) -> None:
    """Put the target channel, another channel and a viewer in the event."""
    others = [person for person in STREAMERS if person.id != target.id]
    peer = rng.choice(others)
    actor = rng.choice(VIEWERS)

    renamed = {}
    for prefix in _person_prefixes(event):
        person = _recast(prefix, event[prefix + "id"], target, peer, actor)
        if person is not None:
            renamed[event[prefix + "name"]] = person.name
            _put_person(event, prefix, person)

    # Chat notices repeat the chatter's display name in their text.
    if "system_message" in event:
        for old, new in renamed.items():
            event["system_message"] = event["system_message"].replace(old, new)


def _person_prefixes(event: dict) -> list[str]:
    """Return the prefixes of the ``<prefix>id/login/name`` triples set in it."""
    prefixes = []
    for key, value in event.items():
        prefix = key.removesuffix("id")
        named = prefix + "login" in event and prefix + "name" in event
        if key.endswith("id") and value is not None and named:
            prefixes.append(prefix)
    return prefixes


def _recast(
    prefix: str, sample_id: str, target: Person, peer: Person, actor: Person
) -> Person | None:
    """Choose who replaces the person the sample names under ``prefix``."""
    if sample_id == _SAMPLE_STREAMER.id:
        return target
    if sample_id == _SAMPLE_PEER.id:
        return peer
    if prefix in _ACTOR_PREFIXES:
        return actor
    return None


def _put_person(fields: dict, prefix: str, person: Person) -> None:
    """Write ``person`` into the ``<prefix>id/login/name`` fields."""
    fields[prefix + "id"] = person.id
    fields[prefix + "login"] = person.login
    fields[prefix + "name"] = person.name


def _refresh_ids(event: dict, rng: random.Random) -> None:
    """Give the event new ids of the same shape, keeping references intact."""
    old_ids = [event[key] for key in _FRESH_ID_FIELDS if event.get(key)]
    for item in (*event.get("choices", ()), *event.get("outcomes", ())):
        old_ids.append(item["id"])

    fresh = {old: _new_id_like(old, rng) for old in old_ids}
    _replace_strings(event, fresh)


def _new_id_like(old: str, rng: random.Random) -> str:
    """Return a random id of the same form as ``old``."""
    if _UUID.fullmatch(old):
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if old.isdigit():
        return str(rng.randrange(10 ** (len(old) - 1), 10 ** len(old)))
    return "".join(rng.choices(_BASE62, k=len(old)))


def _replace_strings(node: dict | list, table: dict[str, str]) -> None:
    """Replace each string inside ``node`` that is a key of ``table``."""
    keys = node.keys() if isinstance(node, dict) else range(len(node))
    for key in keys:
        value = node[key]
        if isinstance(value, str) and value in table:
            node[key] = table[value]
        elif isinstance(value, dict | list):
            _replace_strings(value, table)


def _move_to_now(event: dict) -> None:
    """Make the event happen now, keeping the distances between its times."""
    times = {
        key: _to_nanoseconds(value)
        for key, value in event.items()
        if key.endswith("_at") and isinstance(value, str)
    }
    anchors = [key for key in _EVENT_TIME_FIELDS if key in times]
    if not anchors:
        return

    shift = time.time_ns() - times[anchors[0]]
    for key, value in times.items():
        event[key] = format_timestamp(value + shift)


def _to_nanoseconds(timestamp: str) -> int:
    """Read an RFC 3339 time as nanoseconds since the epoch, to the microsecond."""
    moment = datetime.fromisoformat(timestamp)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _keep(event: dict, rng: random.Random) -> None:
    """Leave the sample's amounts as they are."""


def _vary_tier(event: dict, rng: random.Random) -> None:
    """Pick a subscription tier, tier 1 being by far the most common."""
    event["tier"] = rng.choices(("1000", "2000", "3000"), (85, 10, 5))[0]


def _vary_gift(event: dict, rng: random.Random) -> None:
    """Pick the number of gifted subs, and the gifter's total when shown."""
    _vary_tier(event, rng)
    event["total"] = rng.choice((1, 1, 1, 1, 5, 5, 10, 20, 50))
    if event["cumulative_total"] is not None:
        event["cumulative_total"] = event["total"] + rng.randint(0, 200)


def _vary_cheer(event: dict, rng: random.Random) -> None:
    """Pick the bits, and make the cheermote in the message say the same."""
    bits = rng.choice((1, 10, 50, 100, 100, 250, 500, 1000, 5000))
    event["bits"] = bits
    event["message"] = re.sub(r"^Cheer\d+", f"Cheer{bits}", event["message"])


def _vary_raid(event: dict, rng: random.Random) -> None:
    """Pick the raid size: usually tens of viewers, now and then thousands."""
    event["viewers"] = max(1, round(rng.lognormvariate(4.0, 1.3)))


def _vary_donation(event: dict, rng: random.Random) -> None:
    """Pick a donation amount, in minor units of the sample's currency."""
    event["amount"]["value"] = rng.choice((100, 500, 1000, 2500, 5000, 10000))


_VARIATIONS = {
    "channel.charity_campaign.donate": _vary_donation,
    "channel.cheer": _vary_cheer,
    "channel.raid": _vary_raid,
    "channel.subscribe": _vary_tier,
    "channel.subscription.end": _vary_tier,
    "channel.subscription.gift": _vary_gift,
}
