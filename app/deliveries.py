"""What became of each delivery, kept small in Redis for `cli.py explain`.

An accepted delivery needs no note: its stream entry, then its stored row
(``received_at``, ``stored_at``, cursor), say what became of it, and the
webhook's one XADD stays all a request waits for. Refused deliveries and
redeliveries are counted, never stored in full: per message id a small hash
holds when refusals first and last arrived, how many, the last one's kind
and reason, and how many copies ingest found already stored. A hash expires
``RECORD_TTL`` after its last change (``REFUSAL_TTL`` when it only holds
refusals, which are not authenticated). No body is ever kept here.

Fields of ``streamfeed:delivery:<message_id>``:

- ``first_arrived_at``, ``last_arrived_at``, ``refused``: refusals;
- ``refusal``, ``refusal_reason``, ``refusal_status``: the last refusal;
- ``duplicates``, ``last_duplicate_arrived_at``: copies ingest skipped.
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
    moment = format_timestamp(now)
    pipe.hsetnx(key, "first_arrived_at", moment)
    pipe.hset(key, "last_arrived_at", moment)
    pipe.hincrby(key, "refused", 1)
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
    """Return the record of ``message_id`` as text, empty when there is none."""
    raw = client.hgetall(record_key(message_id))
    return {k.decode(): v.decode() for k, v in raw.items()}
