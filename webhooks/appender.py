"""Appending notifications to the ingest stream, many requests per round trip.

Each accepted notification waits for its XADD before it is answered 204. On
its own, each XADD costs its request a connection check-out (redis-py
polls the socket for stray data first), a send, a receive and Redis a
read and a write on its socket: together more than the rest of the
request's work. ``StreamAppender`` keeps one sender per process (a thread,
a greenlet under gunicorn's gevent workers): a request puts its entry in
the queue and waits; the sender takes everything queued, sends it as one
pipeline (XADDs only, no MULTI: each XADD is atomic on its own), and tells
each waiting request whether its own entry was added. Under load the
XADDs of all the requests in flight travel together; a lone request waits
for one round trip, as before.

A request's answer still depends only on its own entry: 204 when Redis
added it, 503 when Redis refused it, could not be reached, or did not
answer within ``WAIT_SECONDS``.
"""

import logging
import os
import threading

import redis

logger = logging.getLogger(__name__)

# Longer than the client's socket timeouts (app/cache.py), so that a
# request normally learns the real error; reached only if the sender stalls.
WAIT_SECONDS = 10.0


class Pending:
    """One entry waiting to be sent, and what became of it."""

    __slots__ = ("fields", "sent", "error")

    def __init__(self, fields: dict) -> None:
        self.fields = fields
        self.sent = threading.Event()
        self.error: Exception | None = None


class StreamAppender:
    """XADDs to one stream, sent together by one sender per process."""

    def __init__(self, client: redis.Redis, stream: str) -> None:
        self.client = client
        self.stream = stream
        self._queue: list[Pending] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._sender: threading.Thread | None = None
        self._pid = 0

    def append(self, fields: dict) -> None:
        """Add one entry; return once Redis has it, or raise ``RedisError``."""
        pending = Pending(fields)
        with self._lock:
            self._queue.append(pending)
            self._start_sender()
        self._wake.set()
        if not pending.sent.wait(WAIT_SECONDS):
            raise redis.TimeoutError(f"no answer from Redis in {WAIT_SECONDS:.0f} s")
        if pending.error is not None:
            raise pending.error

    def _start_sender(self) -> None:
        """Start the sender in this process (again after a fork). Under lock."""
        pid = os.getpid()
        if self._pid == pid and self._sender is not None and self._sender.is_alive():
            return
        self._pid = pid
        self._sender = threading.Thread(
            target=self._send_forever, name="streamfeed-appender", daemon=True
        )
        self._sender.start()

    def _send_forever(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                batch, self._queue = self._queue, []
                self._wake.clear()
            if batch:
                self._send(batch)

    def _send(self, batch: list[Pending]) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            for pending in batch:
                pipe.xadd(self.stream, pending.fields)
            results = pipe.execute(raise_on_error=False)
        except Exception as e:  # Redis down, or anything unforeseen
            if not isinstance(e, redis.RedisError):
                logger.exception(
                    "Stream appender: sending %s entries failed", len(batch)
                )
            results = [e] * len(batch)
        for pending, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                pending.error = result
            pending.sent.set()
