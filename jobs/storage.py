"""Daily storage upkeep on Postgres: partitions ahead, old message ids out.

Creates the monthly partitions of ``events`` for the coming months, so
that no month's rows land in ``events_default``, and forgets the message
ids of events stored more than MESSAGE_ID_RETENTION_DAYS ago: at 900
million events a day, ``event_message_ids`` would otherwise grow by as
many rows a day. Idempotent; on SQLite it does nothing.
"""

import logging
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from app.extensions import db
from app.partitions import ensure_partitions
from app.partitions import forget_message_ids
from jobs.context import job
from jobs.context import job_app

logger = logging.getLogger(__name__)

STORAGE_SECONDS = 24 * 3600


@job
def keep_storage() -> str:
    """Create partitions ahead and forget message ids past the retention."""
    engine = db.engine
    if engine.dialect.name != "postgresql":
        return "SQLite: nothing to do"
    created = ensure_partitions(engine)
    days = job_app().config["MESSAGE_ID_RETENTION_DAYS"]
    forgotten = forget_message_ids(engine, datetime.now(UTC) - timedelta(days=days))
    summary = (
        f"{len(created)} partitions created, {forgotten} message ids older than "
        f"{days} days forgotten"
    )
    logger.info("Storage: %s", summary)
    return summary
