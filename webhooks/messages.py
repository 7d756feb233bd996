"""Reading one EventSub delivery: headers, signature, freshness, body.

``read_message`` applies Twitch's rules in a fixed order and raises
``Refused`` with the HTTP status and a short reason for the first one that
fails. The signature is checked on the raw bytes before anything is parsed.
"""

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

import orjson

from app.events import parse_timestamp
from webhooks.signature import signing_secret

SIGNATURE = "Twitch-Eventsub-Message-Signature"
MESSAGE_ID = "Twitch-Eventsub-Message-Id"
TIMESTAMP = "Twitch-Eventsub-Message-Timestamp"
MESSAGE_TYPE = "Twitch-Eventsub-Message-Type"
RETRY = "Twitch-Eventsub-Message-Retry"
SUBSCRIPTION_TYPE = "Twitch-Eventsub-Subscription-Type"
SUBSCRIPTION_VERSION = "Twitch-Eventsub-Subscription-Version"
REQUIRED_HEADERS = (
    MESSAGE_ID,
    TIMESTAMP,
    MESSAGE_TYPE,
    RETRY,
    SUBSCRIPTION_TYPE,
    SUBSCRIPTION_VERSION,
)

# Twitch's replay guidance: drop messages sent more than 10 minutes ago.
# The same bound applies to the future, which only a wrong clock produces.
MAX_AGE = timedelta(minutes=10)

# Twitch's message ids are UUIDs; the column allows a little more.
MAX_MESSAGE_ID = 100
# Twitch's bodies nest about six levels; far deeper ones only exhaust the
# recursion of the JSON encoder when the row is stored.
MAX_DEPTH = 32

# A ``\uD800``-style escape may leave a lone surrogate, which neither
# database can store (valid pairs are already joined by the parser); so may
# the bytes of one written raw (ED A0 to ED BF), which UTF-8 forbids but the
# standard library's parser lets through.
SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# A run of digits orjson could not hold as a 64-bit integer, found by
# turning every digit into 0 (bytes.translate is far faster than a regex).
DIGITS_AS_ZERO = bytes.maketrans(b"0123456789E", b"0" * 10 + b"e")
LONG_NUMBER = b"0" * 19
# An exponent of four digits or more: a float reads 1e-99999 as 0.0, but
# Postgres refuses the text as a number, so such a body is not stored as
# sent (a false alarm inside a string only costs encoding it again).
LONG_EXPONENTS = (b"e0000", b"e-0000", b"e+0000")

VERIFICATION = "webhook_callback_verification"
NOTIFICATION = "notification"
REVOCATION = "revocation"


# Why a delivery was refused, as metrics and `cli.py explain` name it.
BAD_SIGNATURE = "bad_signature"
STALE = "stale"
MISSING_HEADER = "missing_header"
MALFORMED = "malformed"
TOO_LARGE = "too_large"


class Refused(Exception):
    """A delivery we will not accept, with the status and reason to answer.

    ``kind`` sorts the reason into one of the few names above; ``signed``
    says whether the delivery carried a valid signature (so it came from
    Twitch, or from whoever holds the secret).
    """

    def __init__(self, status: int, reason: str, kind: str = MALFORMED) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.kind = kind
        self.signed = False


@dataclass(frozen=True)
class Message:
    id: str
    type: str
    retry: int
    sent_at: datetime
    body: dict[str, Any]
    # Which of the accepted secrets signed it: 0 the current, 1 the previous.
    secret_index: int = 0

    @property
    def subscription(self) -> dict[str, Any]:
        return self.body["subscription"]


def plain_ascii(value: str) -> bool:
    """Twitch's message ids are UUIDs: printable ASCII."""
    return value.isascii() and value.isprintable()


def noted_id(headers: Any) -> str:
    """The message id a refusal is noted under: the header as sent, or ""
    (not noted) when it could not be a message id we store."""
    value = headers.get(MESSAGE_ID, "").strip()
    usable = plain_ascii(value) and len(value) <= MAX_MESSAGE_ID
    return value if usable else ""


def read_message(
    headers: Any, raw: bytes, secrets: tuple[str, ...], now: datetime
) -> Message:
    """Check a delivery and return it parsed, or raise ``Refused``."""
    signature = headers.get(SIGNATURE, "").strip()
    if not signature:
        raise Refused(403, f"missing {SIGNATURE} header", BAD_SIGNATURE)

    values = {}
    for name in REQUIRED_HEADERS:
        values[name] = headers.get(name, "").strip()
        if not values[name]:
            raise Refused(400, f"missing or empty {name} header", MISSING_HEADER)
    if len(values[MESSAGE_ID]) > MAX_MESSAGE_ID:
        raise Refused(400, f"{MESSAGE_ID} is longer than {MAX_MESSAGE_ID} characters")
    # A header's bytes reach us as Latin-1 text, so any other id could not
    # even be checked against the signature as sent.
    if not plain_ascii(values[MESSAGE_ID]):
        raise Refused(400, f"{MESSAGE_ID} must be printable ASCII")

    secret_index = signing_secret(
        secrets, values[MESSAGE_ID], values[TIMESTAMP], raw, signature
    )
    if secret_index is None:
        raise Refused(403, "signature does not match", BAD_SIGNATURE)

    try:
        sent_at = read_sent_at(values[TIMESTAMP], now)
        retry = read_retry(values[RETRY])
        body = read_body(raw)
        check_batch_ids(values[MESSAGE_ID], body)
        if values[MESSAGE_TYPE] == NOTIFICATION:
            check_notification(body)
        elif values[MESSAGE_TYPE] == VERIFICATION:
            check_challenge(body)
    except Refused as e:
        e.signed = True
        raise
    return Message(
        values[MESSAGE_ID], values[MESSAGE_TYPE], retry, sent_at, body, secret_index
    )


def read_sent_at(timestamp: str, now: datetime) -> datetime:
    try:
        sent_at = parse_timestamp(timestamp)
    except ValueError as e:
        raise Refused(400, f"{TIMESTAMP} is not an RFC 3339 time") from e

    if now - sent_at > MAX_AGE:
        raise Refused(400, "message is older than 10 minutes", STALE)
    if sent_at - now > MAX_AGE:
        raise Refused(400, "message is dated more than 10 minutes ahead", STALE)
    return sent_at


def read_retry(value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise Refused(400, f"{RETRY} must be a whole number")
    return int(value)


class OutOfRange(ValueError):
    """A number in the body that no column or JSON document can hold."""


def whole_number(text: str) -> int:
    """Python refuses to read integers of more than 4300 digits."""
    try:
        return int(text)
    except ValueError as e:
        raise OutOfRange(text) from e


def finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise OutOfRange(text)
    return number


def refuse_constant(name: str) -> None:
    """``NaN`` and ``Infinity`` are Python's extensions, not JSON."""
    raise ValueError(f"{name} is not JSON")


def accepted_secrets(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The secrets a delivery may be signed with: the current one and, while
    rotating, the previous one (subscriptions not yet re-created use it)."""
    previous = config.get("EVENTSUB_SECRET_PREVIOUS")
    current = config["EVENTSUB_SECRET"]
    return (current, previous) if previous else (current,)


def read_body(raw: bytes) -> dict[str, Any]:
    """The body of a delivery as a dict, or raise ``Refused`` saying why."""
    return parse_body(raw)[0]


def parse_body(raw: bytes) -> tuple[dict[str, Any], bool]:
    """The body, and whether ``raw`` says exactly the same (nothing replaced).

    When it does, ``raw`` can be stored as the body's JSON text instead of
    encoding the parsed body again.
    """
    try:
        body, strict = parse_json(raw)
    except OutOfRange as e:
        raise Refused(400, "body has a number out of range") from e
    except UnicodeDecodeError as e:
        raise Refused(400, "body is not UTF-8") from e
    except (ValueError, RecursionError) as e:
        raise Refused(400, "body is not valid JSON") from e

    # Counting brackets is a cheap upper bound; walk the body only when needed.
    nesting_bound = raw.count(b"{") + raw.count(b"[")
    if nesting_bound > MAX_DEPTH and depth_of(body) > MAX_DEPTH:
        raise Refused(400, f"body is nested more than {MAX_DEPTH} levels deep")
    if not isinstance(body, dict) or not isinstance(body.get("subscription"), dict):
        raise Refused(400, "body has no subscription object")
    for key in ("id", "type"):
        value = body["subscription"].get(key)
        if not isinstance(value, str) or not 0 < len(value) <= 100:
            raise Refused(
                400, f"subscription {key} must be text of 1 to 100 characters"
            )
    # PostgreSQL cannot store NUL in text or JSONB, nor either database a lone
    # surrogate; keep the rest of the event. orjson refuses lone surrogates,
    # so only a body the standard library read can hold one; escaped pairs
    # (emoji as ASCII JSON writers send them) are already joined.
    if b"\\u0000" in raw or (not strict and SURROGATE.search(raw)):
        return replace_nul(body), False
    return body, strict


def parse_json(raw: bytes) -> tuple[Any, bool]:
    """Parse JSON with orjson, several times faster on the busiest path.

    Returns the value and whether orjson read it (it refuses lone
    surrogates, which the standard library lets through) with nothing a
    database would read differently: no exponent of four digits or more.

    orjson reads integers past 64 bits as floats, so a body with a run of 19
    or more digits anywhere goes to the standard library, as does whatever
    orjson refuses (NaN, very deep nesting, lone surrogates); there the same
    rules hold: numbers out of range raise ``OutOfRange``, NaN and Infinity
    are not JSON.
    """
    shape = raw.translate(DIGITS_AS_ZERO)
    if LONG_NUMBER not in shape:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            return value, not any(e in shape for e in LONG_EXPONENTS)
    # JSON between systems is UTF-8 (RFC 8259), and the checks on the raw
    # bytes (NUL and surrogate escapes) read it so: never let the standard
    # library guess UTF-16 or UTF-32. Raw surrogates pass, to be replaced.
    text = raw.decode("utf-8-sig", "surrogatepass")
    value = json.loads(
        text,
        parse_int=whole_number,
        parse_float=finite_float,
        parse_constant=refuse_constant,
    )
    return value, False


def depth_of(value: Any) -> int:
    """Return how deeply lists and objects nest in ``value``, without recursion."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in item)
    return deepest


def replace_nul(value: Any) -> Any:
    """Return ``value`` with every NUL and lone surrogate replaced by U+FFFD."""
    if isinstance(value, str):
        return UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, list):
        return [replace_nul(item) for item in value]
    if isinstance(value, dict):
        return {replace_nul(k): replace_nul(v) for k, v in value.items()}
    return value


def check_notification(body: dict[str, Any]) -> None:
    """A notification carries ``event`` (or ``events`` when batched)."""
    if isinstance(body.get("event"), dict):
        return
    events = body.get("events")
    if isinstance(events, list) and events and all(is_batch_item(e) for e in events):
        return
    raise Refused(400, "notification has no event object")


def check_batch_ids(message_id: str, body: dict[str, Any]) -> None:
    """A batch stores ``<message id>:<position>``; that must fit the column."""
    events = body.get("events")
    if "event" in body or not isinstance(events, list):
        return
    longest = len(f"{message_id}:{max(len(events) - 1, 0)}")
    if longest > MAX_MESSAGE_ID:
        raise Refused(
            400,
            f"{MESSAGE_ID} is too long for a batch of {len(events)} events "
            f"(the id and ':<position>' must fit {MAX_MESSAGE_ID} characters)",
        )


def is_batch_item(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("data"), dict)


def check_challenge(body: dict[str, Any]) -> str:
    challenge = body.get("challenge")
    if not isinstance(challenge, str) or not challenge:
        raise Refused(400, "verification has no challenge")
    return challenge
