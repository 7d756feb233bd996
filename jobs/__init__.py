"""Background jobs (RQ): subscriptions, reconcile, token checks, backfill.

Nothing lives here yet: the event path stores notifications in the request.
"""
