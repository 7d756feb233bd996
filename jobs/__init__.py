"""Background jobs (RQ): subscriptions, reconcile, tokens, backfill, storage.

- ``context``: the app every job runs in, in a worker or in this process.
- ``queue``: ``enqueue`` to RQ (with REDIS_URL) or to a thread of this
  process (embedded mode), and the periodic schedule of both.
- ``plan``: which subscriptions a streamer should have, and why not others.
- ``subscriptions``: ensure, remove and reconcile them against Helix.
- ``tokens``: hourly validation and refresh of stored user tokens.
- ``backfill``: a connected channel's followers, stored as follow events.
- ``storage``: daily, partitions of ``events`` ahead and old message ids out.
- ``worker``: ``cli.py worker``, an RQ worker with RQ's cron scheduler.
- ``commands``: ``cli.py subscribe``, ``unsubscribe``, ``subscriptions``,
  ``reconcile`` and ``worker``.

Jobs never import views; everything they do is idempotent, so running one
twice, or two at once, changes nothing more than running it once.
"""
