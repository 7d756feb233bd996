"""Where a job goes: an RQ queue in Redis, or a thread of this process.

With REDIS_URL set, ``enqueue`` puts the job on the RQ queue ``streamfeed``
(retried 3 times, after 10 s, 1 min and 5 min), for ``cli.py worker``.
Without it (embedded mode) the same job functions run one at a time on a
thread of this process, and ``start_schedule`` runs the periodic ones
(reconcile every RECONCILE_MINUTES, token validation hourly) on another.
Tests turn the in-process runner off with ``JOBS_IN_PROCESS = False``.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask
from flask import current_app
from rq import Queue
from rq import Retry

logger = logging.getLogger(__name__)

QUEUE = "streamfeed"
RETRY_INTERVALS = [10, 60, 300]
JOB_TIMEOUT = 900
TOKEN_CHECK_SECONDS = 3600


def queue_name(app: Flask) -> str:
    return app.config.get("JOBS_QUEUE") or QUEUE


def rq_queue(app: Flask) -> Queue:
    connection = redis.Redis.from_url(app.config["REDIS_URL"])
    return Queue(queue_name(app), connection=connection)


def enqueue(func: Callable[..., Any], *args: Any) -> None:
    """Run ``func(*args)`` in the background, in a worker or in-process."""
    app = current_app._get_current_object()
    name = getattr(func, "__name__", str(func))
    if app.config["REDIS_URL"]:
        job = rq_queue(app).enqueue(
            func,
            *args,
            retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
            job_timeout=JOB_TIMEOUT,
        )
        logger.info("Jobs: %s queued as %s", name, job.id)
    elif app.config.get("JOBS_IN_PROCESS", True):
        runner_for(app).submit(func, args)
    else:
        logger.info("Jobs: %s not run, jobs are off in this process", name)


class InProcess:
    """One thread running jobs in order, each in the app's context."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self.run, name="jobs", daemon=True)
        self.thread.start()

    def submit(self, func: Callable[..., Any], args: tuple) -> None:
        self.jobs.put((func, args))

    def run(self) -> None:
        while True:
            func, args = self.jobs.get()
            name = getattr(func, "__name__", str(func))
            try:
                with self.app.app_context():
                    result = func(*args)
                logger.info("Jobs: %s done: %s", name, result)
            except Exception:
                # The periodic reconcile repairs whatever a failed job left.
                logger.exception("Jobs: %s failed", name)
            finally:
                self.jobs.task_done()

    def wait(self) -> None:
        """Block until every submitted job has run (for tests and shutdown)."""
        self.jobs.join()


_runners: dict[int, InProcess] = {}
_lock = threading.Lock()


def runner_for(app: Flask) -> InProcess:
    with _lock:
        runner = _runners.get(id(app))
        if runner is None:
            runner = _runners[id(app)] = InProcess(app)
        return runner


def periodic_jobs(app: Flask) -> list[tuple[Callable[..., Any], int]]:
    """The periodic jobs, with how often each runs, in seconds.

    Without Twitch (embedded mode with the simulator off and no client id)
    only the storage job has anything to do.
    """
    from jobs.storage import STORAGE_SECONDS
    from jobs.storage import keep_storage
    from jobs.subscriptions import reconcile
    from jobs.tokens import validate_tokens

    jobs: list[tuple[Callable[..., Any], int]] = []
    if app.config["TWITCH_CLIENT_ID"]:
        if app.config.get("EVENTSUB_CALLBACK_URL"):
            jobs.append((reconcile, app.config["RECONCILE_MINUTES"] * 60))
        else:
            logger.warning("Jobs: no EVENTSUB_CALLBACK_URL, so no reconcile runs")
        jobs.append((validate_tokens, TOKEN_CHECK_SECONDS))
    else:
        logger.info("Jobs: no Twitch client id, so only the storage job runs")
    jobs.append((keep_storage, STORAGE_SECONDS))
    return jobs


def start_schedule(app: Flask, first_after: float = 30.0) -> threading.Thread:
    """Embedded mode: submit each periodic job to the in-process runner,
    ``first_after`` seconds from now (once the server listens, since the
    simulator playing Twitch is served by it) and then at its interval."""

    jobs = periodic_jobs(app)

    def loop() -> None:
        first = time.monotonic() + first_after
        due = dict.fromkeys(range(len(jobs)), first)
        while True:
            moment = time.monotonic()
            for index, (func, every) in enumerate(jobs):
                if due[index] <= moment:
                    runner_for(app).submit(func, ())
                    due[index] = moment + every
            time.sleep(max(1.0, min(due.values()) - time.monotonic()))

    thread = threading.Thread(target=loop, name="jobs-schedule", daemon=True)
    thread.start()
    logger.info("Jobs: periodic jobs run in this process")
    return thread
