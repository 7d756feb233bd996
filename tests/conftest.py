"""Shared fixtures: the app on SQLite and on Postgres, clients, a live server.

Every test that takes ``app`` runs twice, once per database. Postgres tests
use a schema of their own in the database named by TEST_DATABASE_URL
(default: the local server's ``test`` database), created and migrated once
per run and emptied before each test.
"""

import json
import os
import socket
import tempfile
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from app import create_app
from app.db import upgrade_schema
from webhooks.signature import sign

SECRET = "test-secret-0123456789"
SAMPLES = Path(__file__).resolve().parent.parent / "app" / "simulator" / "samples"
POSTGRES_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# Tests that use Redis use this database number, never FLUSHALL it.
# Production mode wants 32 characters or more.
TEST_SECRET_KEY = "test-secret-key-of-at-least-32-characters"
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TABLES = (
    "events",
    "event_counts",
    "subscriptions",
    "twitch_tokens",
    "users",
    "streamers",
    "reconcile_runs",
)
SESSION_FILES = Path(tempfile.mkdtemp(prefix="streamfeed-test-sessions-"))


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    upgrade_schema(url)
    return url


@pytest.fixture(scope="session")
def postgres_url():
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    upgrade_schema(url)
    yield url
    with admin.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str:
    return request.getfixturevalue(f"{request.param}_url")


def make_test_app(database_url: str, **overrides):
    config = {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "EVENTSUB_SECRET": SECRET,
        "SECRET_KEY": TEST_SECRET_KEY,
        "SIMULATOR": False,
        # Never called: tests that talk to Twitch use the simulator's.
        "TWITCH_CLIENT_ID": "test-client-id",
        "TWITCH_CLIENT_SECRET": "test-client-secret",
        "SESSION_FILE_DIR": str(SESSION_FILES),
        # Tests run jobs themselves, in a real worker or by calling them.
        "JOBS_IN_PROCESS": False,
    }
    app = create_app(config | overrides)
    empty_tables(app)
    return app


def empty_tables(app) -> None:
    engine = app.extensions["db"].engine
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Postgres keeps the stored message ids in a table of their own.
            tables = ", ".join((*TABLES, "event_message_ids"))
            connection.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY"))
        else:
            for table in TABLES:
                connection.execute(sa.text(f"DELETE FROM {table}"))


@pytest.fixture
def app(database_url):
    app = make_test_app(database_url)
    yield app
    app.extensions["db"].engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def load_sample(name: str) -> dict:
    """Return a sample body from app/simulator/samples, parsed."""
    return json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def now_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def signed_headers(
    body: bytes,
    message_type: str = "notification",
    message_id: str | None = None,
    timestamp: str | None = None,
    secret: str = SECRET,
) -> dict[str, str]:
    """Headers Twitch would send with ``body``, signed with ``secret``."""
    message_id = message_id or str(uuid.uuid4())
    timestamp = timestamp or now_timestamp()
    subscription = subscription_of(body)
    return {
        "Content-Type": "application/json",
        "Twitch-Eventsub-Message-Id": message_id,
        "Twitch-Eventsub-Message-Retry": "0",
        "Twitch-Eventsub-Message-Type": message_type,
        "Twitch-Eventsub-Message-Signature": sign(secret, message_id, timestamp, body),
        "Twitch-Eventsub-Message-Timestamp": timestamp,
        "Twitch-Eventsub-Subscription-Type": subscription.get("type", "x"),
        "Twitch-Eventsub-Subscription-Version": subscription.get("version", "1"),
    }


def subscription_of(body: bytes) -> dict:
    """The body's subscription, or nothing when the body is deliberately bad."""
    try:
        subscription = json.loads(body).get("subscription")
    except (ValueError, AttributeError, RecursionError):
        return {}
    return subscription if isinstance(subscription, dict) else {}


def compact(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def post_sample(client, name: str, message_id: str | None = None, **kwargs):
    """POST a sample body as Twitch would, signed; return the response."""
    body = compact(load_sample(name))
    message_type = kwargs.pop("message_type", None) or message_type_of(name)
    headers = signed_headers(body, message_type, message_id, **kwargs)
    return client.post("/webhooks/eventsub", data=body, headers=headers)


def message_type_of(name: str) -> str:
    if name.startswith("revocation"):
        return "revocation"
    if name == "webhook_callback_verification":
        return "webhook_callback_verification"
    return "notification"


def free_port() -> int:
    """A local TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def production_env(database_url: str, **settings: str) -> dict[str, str]:
    """Environment of a real web or ingest process in production mode."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=TEST_REDIS_URL,
        EVENTSUB_SECRET=SECRET,
        SECRET_KEY=TEST_SECRET_KEY,
        TWITCH_CLIENT_ID="test-client-id",
        TWITCH_CLIENT_SECRET="test-client-secret",
        SIMULATOR="0",
        LOG_LEVEL="INFO",
    )
    env.update(settings)
    return env


@dataclass
class LiveServer:
    url: str
    app: object


@pytest.fixture
def live_server(sqlite_url):
    """The app on SQLite served over real HTTP (websockets included)."""
    app = make_test_app(sqlite_url)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield LiveServer(f"http://localhost:{server.server_port}", app)
    server.shutdown()
    app.extensions["db"].engine.dispose()


@pytest.fixture
def eventsub_secret() -> str:
    """The secret every test app verifies webhooks with."""
    return SECRET


class DeferredApp:
    """A WSGI callable whose app is set once the server knows its port."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


def serve(make_app):
    """Serve ``make_app(url)`` over real HTTP on a free port; stop on close."""
    deferred = DeferredApp()
    server = make_server("127.0.0.1", 0, deferred, threaded=True)
    url = f"http://localhost:{server.server_port}"
    deferred.app = make_app(url)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return LiveServer(url, deferred.app), server


def simulated_twitch_config(url: str) -> dict:
    """Settings for an app whose simulator plays Twitch at ``url``."""
    return {
        "SIMULATOR": True,
        "TWITCH_CLIENT_ID": None,
        "TWITCH_CLIENT_SECRET": None,
        "TWITCH_AUTH_BASE_URL": f"{url}/simulator/twitch",
        "TWITCH_API_BASE_URL": f"{url}/simulator/twitch/helix",
        "EVENTSUB_CALLBACK_URL": f"{url}/webhooks/eventsub",
        "CACHE_KEY_PREFIX": f"test-{uuid.uuid4().hex}:cache:",
        "SESSION_KEY_PREFIX": f"test-{uuid.uuid4().hex}:session:",
    }


@pytest.fixture
def twitch_server(database_url, request):
    """The app on either database, its simulator playing Twitch, over HTTP.

    Tests may pass settings through ``@pytest.mark.settings(...)``.
    """
    marker = request.node.get_closest_marker("settings")
    extra = marker.kwargs if marker else {}

    def make_app(url):
        return make_test_app(database_url, **simulated_twitch_config(url), **extra)

    live, server = serve(make_app)
    yield live
    server.shutdown()
    live.app.extensions["db"].engine.dispose()
