"""Endpoints for the platform and for monitoring: /healthz, /readyz, /metrics.

- ``/healthz``: the process is alive and serving (200, no dependency
  touched), for restarts.
- ``/readyz``: the database and, when ``REDIS_URL`` is set, Redis answer;
  503 naming the one that does not, so a load balancer stops routing here.
- ``/metrics``: Prometheus text format (see ``app.metrics``).
"""

import logging

import redis
import sqlalchemy as sa
from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify

from app import metrics
from app.extensions import db

logger = logging.getLogger(__name__)

bp = Blueprint("ops", __name__)


def redis_client() -> redis.Redis | None:
    """The app's Redis client, or None in embedded mode."""
    return current_app.extensions.get("redis")


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    checks = {"database": check_database()}
    client = redis_client()
    if client is not None:
        checks["redis"] = check_redis(client)
    down = sorted(name for name, problem in checks.items() if problem)
    body = {
        "status": "ok" if not down else "unavailable",
        "checks": {name: problem or "ok" for name, problem in checks.items()},
    }
    if down:
        logger.warning("Not ready: %s down", ", ".join(down))
        body["down"] = down
    return jsonify(body), 503 if down else 200


def check_database() -> str | None:
    """None when the database answers, else a short reason."""
    try:
        with db.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as e:
        return f"unreachable ({type(getattr(e, 'orig', e)).__name__})"
    return None


def check_redis(client: redis.Redis) -> str | None:
    try:
        client.ping()
    except redis.RedisError as e:
        return f"unreachable ({type(e).__name__})"
    return None


@bp.get("/metrics")
def serve_metrics() -> Response:
    text, content_type = metrics.render(
        redis_client(), current_app.config["INGEST_STREAM"]
    )
    return Response(text, 200, content_type=content_type)
