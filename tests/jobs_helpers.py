"""What the job tests share: the app with Redis, a real RQ worker, the simulator.

The app runs over real HTTP with its simulator playing Twitch (as in
``twitch_server``), with REDIS_URL set so that it queues jobs in RQ, on a
queue of its own. ``work`` runs ``cli.py worker --burst`` in a subprocess:
a real RQ worker, configured like a deployment, whose Helix calls and
webhook challenges go over HTTP to that app.
"""

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import redis
import requests
import sqlalchemy as sa
from rq import Queue

from app.models import Subscription
from app.models import TwitchToken
from app.models import User
from conftest import SECRET

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SIMULATED_SECRET = "simulated-test-key"


def worker_environ(server, **extra: str) -> dict[str, str]:
    """The environment of a deployment that talks to ``server``'s simulator."""
    config = server.app.config
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("TWITCH_",))}
    keep.pop("DATABASE_URL", None)
    return (
        keep
        | {
            "DATABASE_URL": config["DATABASE_URL"],
            "EVENTSUB_SECRET": config["EVENTSUB_SECRET"],
            "SECRET_KEY": config["SECRET_KEY"],
            "TWITCH_CLIENT_ID": config["TWITCH_CLIENT_ID"],
            "TWITCH_CLIENT_SECRET": config["TWITCH_CLIENT_SECRET"],
            "TWITCH_AUTH_BASE_URL": config["TWITCH_AUTH_BASE_URL"],
            "TWITCH_API_BASE_URL": config["TWITCH_API_BASE_URL"],
            "EVENTSUB_CALLBACK_URL": config["EVENTSUB_CALLBACK_URL"],
            "REDIS_URL": REDIS_URL,
            # The app's own cache, as in a deployment: another test's app
            # token (signed by another simulator) must not be read here.
            "CACHE_KEY_PREFIX": config["CACHE_KEY_PREFIX"],
            "SIMULATOR": "0",
            "LOG_LEVEL": "INFO",
        }
        | extra
    )


def cli(server, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "cli.py", *args],
        cwd=ROOT,
        env=worker_environ(server, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def work(server, **extra: str) -> str:
    """Run a real RQ worker over the server's queue until it is empty."""
    queue = server.app.config["JOBS_QUEUE"]
    result = cli(server, "worker", "--burst", "--queue", queue, **extra)
    output = result.stdout + result.stderr
    # Shown by pytest when the test fails.
    print(output)
    assert result.returncode == 0, output
    return output


def enqueue(server, func, *args) -> None:
    """Queue a job as the app does (``jobs.queue.enqueue``), in its queue."""
    from jobs import queue

    with server.app.app_context():
        queue.enqueue(func, *args)


def failed_jobs(server) -> int:
    connection = redis.Redis.from_url(REDIS_URL)
    return Queue(
        server.app.config["JOBS_QUEUE"], connection=connection
    ).failed_job_registry.count


def simulator(server) -> dict:
    return requests.get(f"{server.url}/simulator/twitch/_control", timeout=10).json()


def control(server, **body) -> dict:
    response = requests.post(
        f"{server.url}/simulator/twitch/_control", json=body, timeout=30
    )
    response.raise_for_status()
    return response.json()


def at_twitch(server, streamer_id: str | None = None) -> list[dict]:
    """The subscriptions the simulator holds (for one streamer)."""
    found = simulator(server)["subscriptions"]
    if streamer_id is None:
        return found
    return [s for s in found if streamer_id in s["condition"].values()]


def stored(server, model=Subscription, *where):
    with server.app.app_context():
        session = server.app.extensions["db"].session()
        rows = session.scalars(sa.select(model).where(*where)).all()
        session.close()
        return rows


def wait_until(check, timeout: float = 15.0):
    """Poll ``check`` until it returns something true; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, "condition not met in time"
            return value
        time.sleep(0.05)


def all_enabled(server, streamer_id: str, count: int) -> None:
    """Wait until Twitch and the database have ``count`` enabled ones."""

    def done():
        twitch_side = [s for s in at_twitch(server, streamer_id)]
        rows = stored(server, Subscription, Subscription.streamer_id == streamer_id)
        return (
            len(twitch_side) == count
            and all(s["status"] == "enabled" for s in twitch_side)
            and len([r for r in rows if r.status == "enabled"]) == count
        )

    wait_until(done)


def add_consent(
    server, login: str, user_id: str, scopes: list[str], channel_id=None, **fields
) -> int:
    """Store a channel consent as the connect flow does (tokens made up)."""
    app = server.app
    box = app.extensions["token_box"]
    moment = datetime.now(UTC)
    with app.app_context():
        session = app.extensions["db"].session()
        user = session.scalar(
            sa.select(User).where(User.provider_user_id == user_id)
        ) or User(
            provider="twitch",
            provider_user_id=user_id,
            login=login,
            display_name=login,
            created_at=moment,
            signed_in_at=moment,
        )
        session.add(user)
        session.flush()
        row = TwitchToken(
            user_id=user.id,
            purpose="channel",
            twitch_user_id=user_id,
            channel_id=channel_id or user_id,
            channel_login=fields.pop("channel_login", login),
            scopes=" ".join(scopes),
            access_token=box.seal(f"made-up-{uuid.uuid4().hex}"),
            refresh_token=None,
            expires_at=moment + timedelta(hours=4),
            validated_at=moment,
            created_at=fields.pop("created_at", moment),
            **fields,
        )
        session.add(row)
        session.commit()
        token_id = row.id
        session.close()
        return token_id


def add_fan(server, login: str, favorite_id: str, favorite_login: str) -> None:
    """A viewer who has ``favorite_login`` as favorite."""
    app = server.app
    moment = datetime.now(UTC)
    with app.app_context():
        session = app.extensions["db"].session()
        session.add(
            User(
                provider="twitch",
                provider_user_id=f"fan-{login}",
                login=login,
                display_name=login,
                favorite_id=favorite_id,
                favorite_login=favorite_login,
                created_at=moment,
                signed_in_at=moment,
            )
        )
        session.commit()
        session.close()


def helix_create(server, kind: str, version: str, condition: dict) -> dict:
    """Create a subscription at the simulator directly, as another process
    of ours would have (same callback and secret)."""
    from app.twitch import twitch

    with server.app.app_context():
        body = {
            "type": kind,
            "version": version,
            "condition": condition,
            "transport": {
                "method": "webhook",
                "callback": server.app.config["EVENTSUB_CALLBACK_URL"],
                "secret": SECRET,
            },
        }
        response = twitch().create_subscription(body)
        assert response.status_code == 202, response.text
        return response.json()["data"][0]
