"""Server-side sessions (flask-session): Redis, or files under instance/.

The cookie holds only a random session id; what the session says stays on
the server, so logging out really ends it. The cookie is HttpOnly and
SameSite=Lax, and Secure whenever the request came over HTTPS (behind
TRUSTED_PROXIES proxies, as their X-Forwarded-Proto says). Stored sessions
expire 7 days after they were written, and ``app.auth`` ends any session
7 days after its sign-in, however active it is.
"""

from datetime import timedelta
from pathlib import Path

from cachelib import FileSystemCache
from flask import Flask
from flask import request
from flask_session import Session
from werkzeug.middleware.proxy_fix import ProxyFix

from app.auth import SESSION_LIFETIME
from app.cache import make_redis

# Enough for every signed-in viewer of a small deployment; files past it
# are pruned oldest first.
SESSION_FILES = 50_000


def init_app(app: Flask) -> None:
    config = app.config
    config.setdefault("SESSION_KEY_PREFIX", "streamfeed:session:")
    config.update(
        SESSION_PERMANENT=True,
        # The store and the cookie keep a session an hour past its end, so
        # that app.auth, not a silent expiry, tells the viewer it ended.
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME + timedelta(hours=1),
        # A form's CSRF token lives as long as the session it belongs to.
        WTF_CSRF_TIME_LIMIT=None,
        # The 7 days run from sign-in; a visit does not extend them.
        SESSION_REFRESH_EACH_REQUEST=False,
        SESSION_COOKIE_NAME="streamfeed_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    if config["REDIS_URL"]:
        config["SESSION_TYPE"] = "redis"
        config["SESSION_REDIS"] = make_redis(config["REDIS_URL"])
    else:
        folder = config.get("SESSION_FILE_DIR") or Path(app.instance_path) / "sessions"
        config["SESSION_TYPE"] = "cachelib"
        config["SESSION_CACHELIB"] = FileSystemCache(
            str(folder), threshold=SESSION_FILES, mode=0o600
        )

    Session(app)
    interface = app.session_interface
    # flask-session reads the Secure flag from configuration only; decide
    # it per request instead, so HTTPS gets it and local HTTP still works.
    interface.get_cookie_secure = lambda _app: request.is_secure
    # Twitch's webhooks carry no cookie and need no session: skip making
    # one (a fresh id per delivery) on the busiest path.
    open_session = interface.open_session
    interface.open_session = lambda app_, request_: (
        interface.make_null_session(app_)
        if request_.blueprint == "webhooks"
        else open_session(app_, request_)
    )

    proxies = config["TRUSTED_PROXIES"]
    if proxies:
        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )
