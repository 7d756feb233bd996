"""``cli.py worker``: an RQ worker, with RQ's cron scheduler for periodic jobs.

The worker runs the ``streamfeed`` queue with RQ's scheduler on (retries
with backoff are scheduled jobs). Beside it, a thread runs an RQ
``CronScheduler`` for the periodic jobs (reconcile every
RECONCILE_MINUTES, token validation hourly). Several worker processes may
run: they share a Redis lock, and only its holder enqueues periodic jobs,
so each runs once per interval whatever the number of workers.

The app is built once, before the worker forks a work horse per job; each
horse drops the database connections it inherited.
"""

import logging
import os
import threading

import redis
from flask import Flask
from rq import Worker
from rq.cron import CronScheduler

from jobs.context import use_app
from jobs.queue import JOB_TIMEOUT
from jobs.queue import periodic_jobs
from jobs.queue import queue_name

logger = logging.getLogger(__name__)

LEADER_KEY = "streamfeed:cron-leader"
LEADER_SECONDS = 90
TICK_SECONDS = 15


class StreamfeedWorker(Worker):
    """RQ's worker, listening for its commands with a 1 s read timeout.

    RQ's own listens with 60 s reads, and closing that connection at exit
    waits for the read in progress: a worker would take up to a minute to
    stop. Everything else is RQ's.
    """

    def subscribe(self) -> None:
        self.log.info(
            "Worker %s: subscribing to %s", self.name, self.pubsub_channel_name
        )
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=1, daemon=True, exception_handler=self._pubsub_exception_handler
        )


def run_worker(app: Flask, queue: str | None, burst: bool) -> bool:
    """Work the queue until stopped (or, with ``burst``, until it is empty)."""
    use_app(app)
    engine = app.extensions["db"].engine
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    name = queue or queue_name(app)
    # The worker's client gets RQ's long socket timeout (for its blocking
    # dequeue) before it opens a connection; the cron thread has its own.
    worker = StreamfeedWorker(
        [name], connection=redis.Redis.from_url(app.config["REDIS_URL"])
    )
    if not burst:
        connection = redis.Redis.from_url(app.config["REDIS_URL"])
        stop = threading.Event()
        thread = threading.Thread(
            target=run_cron,
            args=(make_cron(app, connection, name), connection, stop),
            name="cron",
            daemon=True,
        )
        thread.start()
    # RQ's scheduler (which moves retries to the queue when due) runs as a
    # child process that outlives a burst; a burst run does without it.
    return worker.work(
        burst=burst, with_scheduler=not burst, logging_level=app.config["LOG_LEVEL"]
    )


def make_cron(app: Flask, connection: redis.Redis, queue: str) -> CronScheduler:
    """RQ's cron scheduler, with the periodic jobs registered on ``queue``."""
    cron = CronScheduler(connection=connection, logging_level=app.config["LOG_LEVEL"])
    for func, every in periodic_jobs(app):
        cron.register(func, queue, interval=every, job_timeout=JOB_TIMEOUT)
    return cron


def tick(cron: CronScheduler, lock) -> list:
    """Enqueue the periodic jobs that are due, if this process leads."""
    leads = lock.extend(LEADER_SECONDS, replace_ttl=True) if lock.owned() else False
    if not leads:
        leads = lock.acquire(blocking=False)
    if not leads:
        return []
    enqueued = cron.enqueue_jobs()
    if enqueued:
        cron.save()
    cron.heartbeat()
    return enqueued


def leader_lock(connection: redis.Redis, cron: CronScheduler):
    """The lock whose holder enqueues the periodic jobs of these queues."""
    queues = ",".join(sorted({job.queue_name for job in cron.get_jobs()}))
    return connection.lock(f"{LEADER_KEY}:{queues}", timeout=LEADER_SECONDS)


def run_cron(cron: CronScheduler, connection: redis.Redis, stop: threading.Event):
    """The cron thread: a tick, then sleep until the next job is due."""
    lock = leader_lock(connection, cron)
    cron.register_birth()
    try:
        while not stop.is_set():
            try:
                tick(cron, lock)
            except redis.RedisError as e:
                logger.warning("Cron: Redis unavailable (%s)", type(e).__name__)
            stop.wait(min(TICK_SECONDS, max(1.0, cron.calculate_sleep_interval())))
    finally:
        cron.register_death()
