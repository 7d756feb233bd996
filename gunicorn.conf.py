"""gunicorn settings for `gunicorn wsgi:app` (the Procfile's web process).

gunicorn reads this file from the working directory by default. Every open
feed page holds a websocket, and flask-sock serves each one on a thread, so
the worker class is gthread with many threads per worker.

- PORT: port to bind on all interfaces (default 5000), as Heroku-style
  platforms set it.
- WEB_CONCURRENCY: worker processes (default 2).
- WEB_THREADS: threads per worker, hence open feeds per worker (default 100).
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "100"))
# Feeds stay open for hours; only a silent worker is restarted.
timeout = 30
graceful_timeout = 10
