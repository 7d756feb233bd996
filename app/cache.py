"""A small shared cache: Redis when REDIS_URL is set, else this process.

Used for what Twitch tells us that many requests ask again: the app access
token and Helix user lookups. cachelib gives both stores one interface.
"""

import redis
from cachelib import BaseCache
from cachelib import RedisCache
from cachelib import SimpleCache
from flask import Flask
from flask import current_app


def make_redis(url: str) -> redis.Redis:
    """A Redis client with short timeouts, so an outage fails fast."""
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


class Cache:
    """The current app's cache, bound by ``init_app``."""

    def init_app(self, app: Flask) -> None:
        url = app.config["REDIS_URL"]
        if url:
            store: BaseCache = RedisCache(
                make_redis(url),
                key_prefix=app.config["CACHE_KEY_PREFIX"],
            )
        else:
            store = SimpleCache(threshold=10_000)
        app.extensions["cache"] = store

    @property
    def store(self) -> BaseCache:
        return current_app.extensions["cache"]
