"""What became of each delivery, kept small in Redis for `cli.py explain`.

Refused deliveries are counted, never stored in full: per message id a small
hash holds when it first and last arrived, how many times it was accepted
or refused, the last refusal's kind and reason, and, once ingest has dealt
with it, when it was stored and its cursor or how many copies were found
already stored. Each hash expires ``RECORD_TTL`` after its last change. The
body of a delivery is never kept here.

Fields of ``streamfeed:delivery:<message_id>``:

- ``first_arrived_at``, ``last_arrived_at``: RFC 3339 UTC;
- ``deliveries``, ``accepted``, ``refused``: counts;
- ``refusal``, ``refusal_reason``, ``refusal_status``: the last refusal;
- ``stored_at``, ``cursor``: set by ingest when the event was stored;
- ``duplicates``: copies ingest found already stored.
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
# Refused deliveries are not authenticated; keep their records shorter.
REFUSAL_TTL = timedelta(days=1)


def record_key(message_id: str) -> str:
    return RECORD_KEY.format(message_id=message_id)


def add_arrival(pipe: Any, message_id: str, now: datetime, accepted: bool) -> None:
    """Queue, on a pipeline, the commands that note one arrival."""
    key = record_key(message_id)
    moment = format_timestamp(now)
    pipe.hsetnx(key, "first_arrived_at", moment)
    pipe.hset(key, "last_arrived_at", moment)
    pipe.hincrby(key, "deliveries", 1)
    pipe.hincrby(key, "accepted" if accepted else "refused", 1)
    if accepted:
        pipe.expire(key, RECORD_TTL)


def record_refusal(
    client: redis.Redis,
    message_id: str,
    now: datetime,
    kind: str,
    reason: str,
    status: int,
) -> None:
    """Count one refused delivery of ``message_id``; Redis trouble is logged.

    The answer to Twitch does not depend on this record, so a Redis outage
    only loses the note, never the answer.
    """
    if not message_id:
        return
    pipe = client.pipeline(transaction=False)
    key = record_key(message_id)
    add_arrival(pipe, message_id, now, accepted=False)
    pipe.hset(
        key,
        mapping={"refusal": kind, "refusal_reason": reason, "refusal_status": status},
    )
    # A record that was accepted before keeps its longer life.
    pipe.expire(key, REFUSAL_TTL, nx=True)
    try:
        pipe.execute()
    except redis.RedisError as e:
        logger.warning(
            "EventSub %s: refusal not recorded, Redis unavailable (%s)",
            message_id,
            type(e).__name__,
        )


def add_outcomes(pipe: Any, stored: dict[str, tuple[int, datetime]], dupes: list):
    """Queue, on a pipeline, what ingest did with a batch.

    ``stored`` maps a message id to its cursor and storing time; ``dupes``
    lists the message ids whose events were already stored.
    """
    for message_id, (cursor, moment) in stored.items():
        key = record_key(message_id)
        pipe.hset(
            key, mapping={"stored_at": format_timestamp(moment), "cursor": cursor}
        )
        pipe.expire(key, RECORD_TTL)
    for message_id in dupes:
        key = record_key(message_id)
        pipe.hincrby(key, "duplicates", 1)
        pipe.expire(key, RECORD_TTL)


def read_record(client: redis.Redis, message_id: str) -> dict[str, str]:
    """Return the record of ``message_id`` as text, empty when there is none."""
    raw = client.hgetall(record_key(message_id))
    return {k.decode(): v.decode() for k, v in raw.items()}
