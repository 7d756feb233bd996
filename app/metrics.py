"""Prometheus metrics: what each process counts, and what Redis holds.

Counters and histograms live in the process that observes them: the web
processes count webhooks by outcome, ``cli.py ingest`` counts batches,
stored events, duplicates, retries and dead letters (served on
``INGEST_METRICS_PORT`` when set). The figures shared by all processes
(stream backlog, pending entries, age of the oldest unstored entry, dead
letters, failed jobs) are read from Redis when ``/metrics`` is scraped, so
any web process answers them alike.

gunicorn runs several worker processes, and a scrape reaches one of them.
With ``PROMETHEUS_MULTIPROC_DIR`` set (an empty directory, wiped before the
server starts), prometheus_client's multiprocess mode adds up the counters
of every worker of the host; without it each worker reports its own
counts, which is right only with one worker. gunicorn's ``child_exit``
hook should call ``prometheus_client.multiprocess.mark_process_dead``.
"""

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram
from prometheus_client import generate_latest
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY

WEBHOOKS = Counter(
    "streamfeed_webhooks",
    "EventSub deliveries answered, by outcome: accepted (buffered or "
    "stored), duplicate (stored before, embedded mode), challenge, "
    "revocation, unknown_type, unavailable (503), or the refusal's kind.",
    ["outcome"],
)
INGEST_BATCH_SIZE = Histogram(
    "streamfeed_ingest_batch_size",
    "Stream entries per batch stored by an ingest consumer.",
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
INGEST_LAG = Gauge(
    "streamfeed_ingest_lag_seconds",
    "Age of the oldest entry of the last batch this consumer stored.",
    multiprocess_mode="max",
)
INGEST_STORED = Counter(
    "streamfeed_ingest_stored_events", "Events newly stored by ingest."
)
INGEST_DUPLICATES = Counter(
    "streamfeed_ingest_duplicates",
    "Stream entries whose message id was already stored.",
)
INGEST_RETRIES = Counter(
    "streamfeed_ingest_database_retries",
    "Batches put off because the database was unreachable.",
)
INGEST_DEAD_LETTERS = Counter(
    "streamfeed_ingest_dead_letters",
    "Stream entries moved to the dead-letter stream.",
)


class RedisCollector:
    """Read the shared figures from Redis at scrape time."""

    def __init__(self, client: Any, stream: str) -> None:
        self.client = client
        self.stream = stream

    def collect(self):
        from app.ingest import GROUP
        from app.ingest import dead_letter_stream
        from app.ingest import entry_age_seconds

        up = GaugeMetricFamily(
            "streamfeed_redis_up", "1 when Redis answered this scrape."
        )
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.xlen(self.stream)
            pipe.xlen(dead_letter_stream(self.stream))
            pipe.xrange(self.stream, count=1)
            pipe.xinfo_groups(self.stream)
            backlog, dead, first, groups = pipe.execute(raise_on_error=False)
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        if isinstance(backlog, int):
            yield gauge(
                "streamfeed_stream_backlog",
                "Notifications buffered in Redis, not yet stored.",
                backlog,
            )
        if isinstance(dead, int):
            yield gauge(
                "streamfeed_stream_dead_letters",
                "Entries in the dead-letter stream (cli.py dead-letters).",
                dead,
            )
        if isinstance(first, list):
            age = entry_age_seconds(first[0][0].decode(), time.time()) if first else 0
            yield gauge(
                "streamfeed_stream_oldest_age_seconds",
                "Age of the oldest buffered notification: how far ingest lags.",
                age,
            )
        if isinstance(groups, list):
            for group in groups:
                if group.get("name") in (GROUP, GROUP.encode()):
                    yield gauge(
                        "streamfeed_stream_pending",
                        "Entries read by a consumer and not yet acknowledged.",
                        group.get("pending", 0),
                    )
        failed = failed_jobs(self.client)
        if failed is not None:
            yield gauge(
                "streamfeed_jobs_failed",
                "Jobs in RQ's failed job registries of all queues.",
                failed,
            )


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


def failed_jobs(client: Any) -> int | None:
    """Count RQ's failed jobs, or None when RQ is not installed.

    RQ arrives with the background jobs; until then this gauge is absent.
    """
    try:
        from rq import Queue
        from rq.registry import FailedJobRegistry
    except ImportError:
        return None
    try:
        return sum(
            len(FailedJobRegistry(queue=queue))
            for queue in Queue.all(connection=client)
        )
    except Exception:
        return None


def render(redis_client: Any, stream: str) -> tuple[bytes, str]:
    """The text a scrape gets, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own = CollectorRegistry()
        multiprocess.MultiProcessCollector(own)
    else:
        own = REGISTRY
    text = generate_latest(own)
    if redis_client is not None:
        shared = CollectorRegistry()
        shared.register(RedisCollector(redis_client, stream))
        text += generate_latest(shared)
    return text, CONTENT_TYPE_LATEST
