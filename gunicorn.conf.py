"""gunicorn settings for `gunicorn wsgi:app` (the Procfile's web process).

gunicorn reads this file from the working directory by default; a command
line option (`-b 127.0.0.1:8000`, `-w 1`) overrides the value here.

Every open feed page holds a websocket for hours. The worker class is
gevent: each connection is a greenlet (a few tens of KB), not a thread, so
one worker holds thousands of feeds while still answering webhooks and
pages. What runs inside cooperates with it: gunicorn monkey-patches the
standard library in each worker before loading the app, redis-py and
simple-websocket (flask-sock) then use gevent's sockets and threads, and
psycopg 3 (3.1.14 and later) notices the patching and waits on gevent too.
The Redis relay of `app/fanout.py` is one greenlet per worker.

- PORT: port to bind on all interfaces (default 5000), as Heroku-style
  platforms set it.
- WEB_CONCURRENCY: worker processes (default 2). With gevent one worker
  uses about one core, so one per core; each has its own Redis pub/sub
  connection and its own feeds.
- WEB_CONNECTIONS: open connections per worker, feeds included (default
  2000). Past it the worker stops accepting until one closes; raise the
  file-descriptor limit (`ulimit -n`) above WEB_CONCURRENCY times this.
"""

import os
import sys


def setting(name: str, default: int, low: int, high: int) -> int:
    """An integer from the environment, or stop naming what is accepted."""
    raw = os.environ.get(name, "").strip() or str(default)
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        sys.exit(
            f"configuration: {name} must be a whole number from {low} to "
            f"{high}, got {raw!r}"
        )
    return int(raw)


bind = f"0.0.0.0:{setting('PORT', 5000, 1, 65535)}"
workers = setting("WEB_CONCURRENCY", 2, 1, 256)
worker_class = "gevent"
worker_connections = setting("WEB_CONNECTIONS", 2000, 1, 1_000_000)
# Every worker listens on its own socket bound to the same port, and the
# kernel spreads new connections across them; with one shared socket the
# worker that wakes first takes most of them.
reuse_port = True
# A worker whose loop is blocked this long (seconds) is killed and replaced.
# Open feeds do not count: greenlets waiting on sockets leave the loop free.
timeout = 30
# On restart, workers get this long to finish requests; feeds are then cut
# and the pages reconnect with their last cursor (to another worker).
graceful_timeout = 10
# Seconds an idle keep-alive HTTP connection stays open between requests.
keepalive = 5
# Access lines would cost more than most requests; errors still log.
accesslog = None


def child_exit(server, worker):
    """Drop a dead worker's live gauges from /metrics (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
