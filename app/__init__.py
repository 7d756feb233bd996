"""streamfeed: a live feed of a Twitch channel's EventSub events."""

import logging
import os
import sys
from pathlib import Path
from typing import Any

# prometheus_client opens its files in this directory as soon as any module
# makes a metric, before a setting could be read: check it first.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _metrics_dir and not (
    os.path.isdir(_metrics_dir) and os.access(_metrics_dir, os.W_OK | os.X_OK)
):
    sys.exit(
        "Error: configuration: PROMETHEUS_MULTIPROC_DIR must name an existing "
        f"directory this process can write to, got {_metrics_dir!r}"
    )

from flask import Flask  # noqa: E402

from app import auth  # noqa: E402
from app import errors  # noqa: E402
from app import sessions  # noqa: E402
from app import twitch  # noqa: E402
from app.cache import make_redis  # noqa: E402
from app.config import finish_config  # noqa: E402
from app.config import load_config  # noqa: E402
from app.extensions import broker  # noqa: E402
from app.extensions import cache  # noqa: E402
from app.extensions import csrf  # noqa: E402
from app.extensions import db  # noqa: E402
from app.extensions import sock  # noqa: E402

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        # Twitch's embed script is loaded only to learn whether Twitch can be
        # reached, so the page can explain empty player and chat columns.
        "script-src 'self' https://player.twitch.tv",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-src https://player.twitch.tv https://www.twitch.tv",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    )
)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment, then ``config`` (used by tests).

    Raises ``ConfigError`` naming the variable when a setting is wrong.
    """
    app = Flask(__name__)
    settings = load_config(os.environ, config)
    finish_config(settings, Path(app.instance_path))
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = settings["WEBHOOK_MAX_BYTES"]

    configure_logging(settings["LOG_LEVEL"])
    db.init_app(app)
    if settings["REDIS_URL"]:
        from webhooks.appender import StreamAppender

        app.extensions["redis"] = make_redis(settings["REDIS_URL"])
        app.extensions["stream_appender"] = StreamAppender(
            app.extensions["redis"], settings["INGEST_STREAM"]
        )
    cache.init_app(app)
    sessions.init_app(app)
    csrf.init_app(app)
    twitch.init_app(app)
    auth.init_app(app)
    sock.init_app(app)
    broker.init_app(app)
    errors.init_app(app)
    register_blueprints(app)
    app.after_request(add_security_headers)
    if settings["REDIS_URL"]:
        from webhooks.fastpath import BufferedNotifications

        app.wsgi_app = BufferedNotifications(app, app.wsgi_app)
    return app


def register_blueprints(app: Flask) -> None:
    from app import api
    from app import live
    from app import ops
    from app import pages
    from app import stats
    from webhooks import views as webhooks

    # Twitch signs its webhooks; a CSRF token has no place there.
    csrf.exempt(webhooks.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(auth.bp, url_prefix="/auth")
    app.register_blueprint(stats.bp, url_prefix="/stats")
    app.register_blueprint(live.bp)
    app.register_blueprint(api.bp, url_prefix="/api")
    app.register_blueprint(webhooks.bp, url_prefix="/webhooks")
    if app.config["TWITCH_SIMULATED"]:
        from app.simulator import twitch as simulated_twitch

        simulated_twitch.init_app(app)
        # It plays Twitch, whose endpoints take no CSRF token of ours.
        csrf.exempt(simulated_twitch.bp)
        app.register_blueprint(simulated_twitch.bp, url_prefix="/simulator/twitch")


def configure_logging(level: str) -> None:
    """Log to standard output, as a Procfile platform expects, once."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        root.addHandler(handler)
    root.setLevel(level)
    # Alembic announces each of its plugins at INFO on every upgrade.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def add_security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response
