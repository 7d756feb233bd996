"""What became of each delivery, kept small in Redis for `cli.py explain`.

An accepted delivery needs no note: its stream entry, then its stored row
(``received_at``, ``stored_at``, cursor), say what became of it, and the
webhook's one XADD stays all a request waits for. Refused deliveries and
redeliveries are counted, never stored in full. No body is ever kept here.

A signed delivery (one that came from Twitch, or from whoever holds the
secret) gets a small hash per message id: when refusals first and last
arrived, how many, the last one's kind and reason, and how many copies
ingest found already stored. It expires ``RECORD_TTL`` after its last
change (``REFUSAL_TTL`` when it only holds refusals). Fields of
``streamfeed:delivery:<message_id>``:

- ``first_arrived_at``, ``last_arrived_at``, ``refused``: refusals;
- ``refusal``, ``refusal_reason``, ``refusal_status``: the last refusal;
- ``duplicates``, ``last_duplicate_arrived_at``: copies ingest skipped.

Anyone can send a request without a valid signature, with a new message id
each time: such refusals go to one stream, ``UNSIGNED_REFUSALS``, trimmed
to about the newest ``UNSIGNED_KEPT`` entries, so that a flood of them
cannot fill the Redis that buffers real notifications (it must never
evict). ``read_record`` looks there when the hash knows no refusal.
"""

import logging
from datetime import datetime
from datetime import timedelta
from typing import Any

import redis

from app.events import format_timestamp

logger = logging.getLogger(__name__)

RECORD_KEY = "streamfeed:delivery:{message_id}"
RECORD_TTL = timedelta(days=7)
# Refused deliveries are not stored; keep their records shorter.
REFUSAL_TTL = timedelta(days=1)
UNSIGNED_REFUSALS = "streamfeed:refusals:unsigned"
# About 200 bytes each in Redis: a few MB whatever comes.
UNSIGNED_KEPT = 10_000


def record_key(message_id: str) -> str:
    return RECORD_KEY.format(message_id=message_id)


def record_refusal(
    client: redis.Redis, message_id: str, now: datetime, refused: Any
) -> None:
    """Count one refused delivery of ``message_id``; Redis trouble is logged.

    ``refused`` is the ``webhooks.messages.Refused`` raised. The answer to
    Twitch does not depend on this record, so a Redis outage only loses the
    note, never the answer.
    """
    if not message_id:
        return
    moment = format_timestamp(now)
    last = {
        "refusal": refused.kind,
        "refusal_reason": refused.reason,
        "refusal_status": refused.status,
    }
    pipe = client.pipeline(transaction=False)
    if refused.signed:
        key = record_key(message_id)
        pipe.hsetnx(key, "first_arrived_at", moment)
        pipe.hset(key, "last_arrived_at", moment)
        pipe.hincrby(key, "refused", 1)
        pipe.hset(key, mapping=last)
        # A record that was accepted before keeps its longer life.
        pipe.expire(key, REFUSAL_TTL, nx=True)
    else:
        fields = {"message_id": message_id, "arrived_at": moment, **last}
        pipe.xadd(UNSIGNED_REFUSALS, fields, maxlen=UNSIGNED_KEPT, approximate=True)
    try:
        pipe.execute()
    except redis.RedisError as e:
        logger.warning(
            "EventSub %s: refusal not recorded, Redis unavailable (%s)",
            message_id,
            type(e).__name__,
        )


def add_duplicates(pipe: Any, copies: list[tuple[str, bytes]]) -> None:
    """Queue, on a pipeline, that ingest found these already stored.

    ``copies`` holds a message id and when that copy arrived. When and as
    which cursor the first copy was stored is in the database, so only the
    skipped copies are noted here.
    """
    for message_id, arrived in copies:
        key = record_key(message_id)
        pipe.hincrby(key, "duplicates", 1)
        pipe.hset(key, "last_duplicate_arrived_at", arrived)
        pipe.expire(key, RECORD_TTL)


def read_record(client: redis.Redis, message_id: str) -> dict[str, str]:
    """Return the record of ``message_id`` as text, empty when there is none.

    Refusals of unsigned copies, kept apart, fill the refusal fields when no
    signed copy was refused.
    """
    raw = client.hgetall(record_key(message_id))
    record = {k.decode(): v.decode() for k, v in raw.items()}
    if "refused" in record:
        return record
    wanted = message_id.encode()
    found = [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in client.xrevrange(UNSIGNED_REFUSALS, count=UNSIGNED_KEPT * 2)
        if fields.get(b"message_id") == wanted
    ]
    if found:
        newest, oldest = found[0], found[-1]
        record |= {
            "first_arrived_at": oldest["arrived_at"],
            "last_arrived_at": newest["arrived_at"],
            "refused": str(len(found)),
            **{k: newest[k] for k in ("refusal", "refusal_reason", "refusal_status")},
        }
    return record
