"""Daily storage upkeep on Postgres: partitions ahead, old data out.

Creates the monthly partitions of ``events`` for the coming months, so
that no month's rows land in ``events_default``; forgets the message ids
of events stored more than MESSAGE_ID_RETENTION_DAYS ago (at 900 million
events a day, ``event_message_ids`` would otherwise grow by as many rows a
day); and, when EVENT_RETENTION_MONTHS is set, drops the partitions of
months older than that. Idempotent; on SQLite it does nothing.
"""

import logging
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from app.extensions import db
from app.partitions import drop_old_partitions
from app.partitions import ensure_partitions
from app.partitions import forget_message_ids
from jobs.context import job
from jobs.context import job_app

logger = logging.getLogger(__name__)

STORAGE_SECONDS = 24 * 3600


@job
def keep_storage() -> str:
    """Create partitions ahead, forget old message ids, drop old months."""
    engine = db.engine
    if engine.dialect.name != "postgresql":
        return "SQLite: nothing to do"
    config = job_app().config
    created = ensure_partitions(engine)
    days = config["MESSAGE_ID_RETENTION_DAYS"]
    forgotten = forget_message_ids(engine, datetime.now(UTC) - timedelta(days=days))
    dropped = drop_old_partitions(engine, config["EVENT_RETENTION_MONTHS"])
    summary = (
        f"{len(created)} partitions created, {forgotten} message ids older than "
        f"{days} days forgotten, {len(dropped)} old partitions dropped"
    )
    logger.info("Storage: %s", summary)
    return summary
