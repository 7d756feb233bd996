"""The subscription jobs, run by a real RQ worker against the simulator.

Each test serves the app over HTTP with its simulator playing Twitch and
Redis configured (so the app queues jobs in RQ), on SQLite and Postgres,
and runs ``cli.py worker --burst`` in a subprocess: the worker calls the
simulator's Helix over HTTP, the simulator sends each challenge and
revocation to the app's webhook, and the test reads both sides.
"""

import subprocess
import sys
import time
import uuid

import pytest
import redis
import requests
import sqlalchemy as sa
from jobs_helpers import REDIS_URL
from jobs_helpers import ROOT
from jobs_helpers import add_consent
from jobs_helpers import add_fan
from jobs_helpers import all_enabled
from jobs_helpers import at_twitch
from jobs_helpers import cli
from jobs_helpers import control
from jobs_helpers import enqueue
from jobs_helpers import failed_jobs
from jobs_helpers import helix_create
from jobs_helpers import simulator
from jobs_helpers import stored
from jobs_helpers import wait_until
from jobs_helpers import work
from jobs_helpers import worker_environ
from rq import Queue
from test_auth import choose_favorite
from test_auth import connect
from test_auth import sign_in

from app.channel import NOT_CONNECTED
from app.models import Event
from app.models import ReconcileRun
from app.models import Streamer
from app.models import Subscription
from app.models import TwitchToken
from conftest import compact
from conftest import load_sample
from conftest import make_test_app
from conftest import serve
from conftest import signed_headers
from conftest import simulated_twitch_config
from jobs.backfill import backfill_followers
from jobs.plan import SCOPED_TYPES
from jobs.queue import runner_for
from jobs.queue import start_schedule
from jobs.subscriptions import ensure_streamer
from jobs.subscriptions import fingerprint
from jobs.subscriptions import reconcile
from jobs.worker import leader_lock
from jobs.worker import make_cron
from jobs.worker import tick

EXAMPLE = ("1000001", "example_streamer")
OTHER = ("1000002", "other_streamer")
PUBLIC_COUNT = 5  # online, offline, update, raid in, raid out
ALL_SCOPES = sorted({s for t in SCOPED_TYPES for s in t.scope.split(" or ")})


@pytest.fixture
def server(database_url, request):
    """The app over HTTP, its simulator playing Twitch, jobs going to RQ."""
    marker = request.node.get_closest_marker("settings")
    extra = marker.kwargs if marker else {}
    queue = f"test-jobs-{uuid.uuid4().hex[:12]}"

    def make_app(url):
        settings = simulated_twitch_config(url) | {
            "REDIS_URL": REDIS_URL,
            "JOBS_QUEUE": queue,
        }
        return make_test_app(database_url, **settings, **extra)

    live, http_server = serve(make_app)
    yield live
    http_server.shutdown()
    live.app.extensions["db"].engine.dispose()
    forget_queue(queue)


def forget_queue(name: str) -> None:
    """Remove the test's queue, its jobs and registries from Redis."""
    connection = redis.Redis.from_url(REDIS_URL)
    queue = Queue(name, connection=connection)
    registries = (
        queue.scheduled_job_registry,
        queue.failed_job_registry,
        queue.finished_job_registry,
    )
    for registry in registries:
        for job_id in registry.get_job_ids():
            registry.remove(job_id, delete_job=True)
    queue.delete(delete_jobs=True)
    for key in connection.scan_iter(f"streamfeed:cron-leader:{name}"):
        connection.delete(key)


def creates(server) -> int:
    return simulator(server)["calls"].get("create_subscription", 0)


def channel_state(server, login: str) -> dict:
    response = requests.get(f"{server.url}/api/streamers/{login}/channel", timeout=10)
    return {t["type"]: t for t in response.json()["types"]}


# Subscribing


def test_two_viewers_share_one_set_and_a_second_run_changes_nothing(server):
    for account in ("viewer_one", "sakura_hoshino"):
        http = requests.Session()
        sign_in(http, server.url, account=account)
        choose_favorite(http, server.url, OTHER[1])

    work(server)

    all_enabled(server, OTHER[0], PUBLIC_COUNT)
    rows = stored(server)
    assert len(rows) == PUBLIC_COUNT
    assert {r.secret_fingerprint for r in rows} == {
        fingerprint(server.app.config["EVENTSUB_SECRET"])
    }
    assert {r.cost for r in rows} == {1}
    assert creates(server) == PUBLIC_COUNT
    types = channel_state(server, OTHER[1])
    assert types["stream.online"]["live"] and types["channel.raid"]["live"]
    assert types["channel.cheer"]["reason"] == NOT_CONNECTED

    enqueue(server, ensure_streamer, *OTHER)
    work(server)

    assert creates(server) == PUBLIC_COUNT
    assert {r.id for r in stored(server)} == {r.id for r in rows}


def test_connecting_a_channel_subscribes_its_scoped_types_and_backfills(server):
    http = requests.Session()
    sign_in(http, server.url, account=EXAMPLE[1])
    connect(http, server.url, EXAMPLE[1])

    work(server)

    wanted = PUBLIC_COUNT + len(SCOPED_TYPES)
    all_enabled(server, EXAMPLE[0], wanted)
    assert {s["cost"] for s in at_twitch(server)} == {0}
    follow = [s for s in at_twitch(server) if s["type"] == "channel.follow"]
    assert follow[0]["condition"] == {
        "broadcaster_user_id": EXAMPLE[0],
        "moderator_user_id": EXAMPLE[0],
    }
    types = channel_state(server, EXAMPLE[1])
    assert types["channel.cheer"]["live"] and types["channel.poll.begin"]["live"]
    assert (
        types["channel.ban"]["reason"] == "streamfeed does not subscribe to this type"
    )

    backfilled = stored(server, Event, Event.event_type == "channel.follow")
    assert len(backfilled) == 7
    assert all(e.payload["backfilled"] for e in backfilled)
    feed = requests.get(f"{server.url}/api/streamers/{EXAMPLE[1]}/events").json()
    assert all(e["backfilled"] for e in feed["events"])
    assert feed["events"][0]["summary"]

    # A second backfill stores nothing new.
    enqueue(server, backfill_followers, EXAMPLE[0])
    work(server)
    assert len(stored(server, Event)) == 7


def test_a_409_adopts_the_subscription_twitch_already_has(server):
    existing = helix_create(
        server, "stream.online", "1", {"broadcaster_user_id": OTHER[0]}
    )
    wait_until(lambda: at_twitch(server)[0]["status"] == "enabled")
    add_fan(server, "viewer_one", *OTHER)

    enqueue(server, ensure_streamer, *OTHER)
    work(server)

    all_enabled(server, OTHER[0], PUBLIC_COUNT)
    online = stored(server, Subscription, Subscription.type == "stream.online")
    assert [r.id for r in online] == [existing["id"]]
    assert len(at_twitch(server)) == PUBLIC_COUNT


def test_a_403_records_which_consent_is_missing(server):
    # The database holds a consent Twitch does not know of (withdrawn since).
    add_consent(server, OTHER[1], OTHER[0], ["bits:read"])

    enqueue(server, ensure_streamer, *OTHER)
    work(server)

    all_enabled(server, OTHER[0], PUBLIC_COUNT)
    cheer = channel_state(server, OTHER[1])["channel.cheer"]
    assert not cheer["live"]
    assert cheer["reason"] == "Twitch refused it: the consent lacks bits:read"
    (streamer,) = stored(server, Streamer)
    assert streamer.notes["channel.cheer"] == cheer["reason"]
    assert streamer.notes["channel.poll.begin"].startswith("the consent given lacks")


def test_a_rate_limit_is_waited_out_and_a_5xx_retried(server):
    control(server, helix_failures=1, rate_limited=1)
    add_fan(server, "viewer_one", *OTHER)

    enqueue(server, ensure_streamer, *OTHER)
    work(server)

    all_enabled(server, OTHER[0], PUBLIC_COUNT)
    state = simulator(server)
    refusals = state["refusals"]
    assert [r[2] for r in refusals] == [503, 429]
    (limited,) = [r for r in refusals if r[2] == 429]
    endpoint, refused_at, _, reset = limited
    later = [
        t for name, t in state["call_times"] if name == endpoint and t > refused_at
    ]
    assert later and min(later) >= reset
    assert failed_jobs(server) == 0


def test_a_lasting_outage_fails_the_job_and_rq_retries_it_later(server):
    control(server, helix_failure=503)
    enqueue(server, ensure_streamer, *OTHER)
    work(server)

    connection = redis.Redis.from_url(REDIS_URL)
    queue = Queue(server.app.config["JOBS_QUEUE"], connection=connection)
    (job_id,) = queue.scheduled_job_registry.get_job_ids()
    job = queue.fetch_job(job_id)
    assert job.retries_left == 2
    assert not stored(server)


# Revocations and the reconcile


def connected_example(server):
    control(server, grant={"user": EXAMPLE[1], "scopes": ALL_SCOPES})
    add_consent(server, EXAMPLE[1], EXAMPLE[0], ALL_SCOPES)
    enqueue(server, ensure_streamer, *EXAMPLE)
    work(server)
    all_enabled(server, EXAMPLE[0], PUBLIC_COUNT + len(SCOPED_TYPES))


def sub_of(server, kind: str) -> dict:
    return next(s for s in at_twitch(server) if s["type"] == kind)


def test_revocations_are_renewed_or_not_by_their_reason(server):
    connected_example(server)
    ids = {
        kind: sub_of(server, kind)["id"]
        for kind in (
            "channel.cheer",
            "channel.subscribe",
            "stream.online",
            "channel.update",
        )
    }
    control(
        server, revoke_subscription=ids["channel.cheer"], reason="authorization_revoked"
    )
    control(server, revoke_subscription=ids["channel.subscribe"], reason="user_removed")
    control(
        server,
        revoke_subscription=ids["stream.online"],
        reason="notification_failures_exceeded",
    )
    control(server, revoke_subscription=ids["channel.update"], reason="version_removed")

    types = channel_state(server, EXAMPLE[1])
    assert (
        types["channel.cheer"]["reason"] == "the streamer withdrew streamfeed's access"
    )
    assert types["stream.online"]["reason"].startswith("Twitch stopped it")

    enqueue(server, reconcile)
    work(server)

    def renewed():
        now = {s["type"]: s for s in at_twitch(server)}
        return all(
            now[k]["id"] != ids[k] and now[k]["status"] == "enabled"
            for k in ("stream.online", "channel.update")
        )

    wait_until(renewed)
    types = channel_state(server, EXAMPLE[1])
    assert types["stream.online"]["live"] and types["channel.update"]["live"]
    assert not types["channel.cheer"]["live"]
    assert not types["channel.subscribe"]["live"]
    assert types["channel.subscribe"]["reason"] == "the Twitch account no longer exists"
    statuses = {s["type"]: s["status"] for s in at_twitch(server)}
    assert statuses["channel.cheer"] == "authorization_revoked"

    # A newer consent brings the withdrawn types back.
    add_consent(server, EXAMPLE[1], EXAMPLE[0], ALL_SCOPES)
    enqueue(server, ensure_streamer, *EXAMPLE)
    work(server)
    wait_until(lambda: channel_state(server, EXAMPLE[1])["channel.cheer"]["live"])


def test_reconcile_repairs_a_deleted_and_a_failed_one_and_removes_an_orphan(server):
    control(server, page_size=2)
    add_fan(server, "viewer_one", *OTHER)
    enqueue(server, ensure_streamer, *OTHER)
    work(server)
    all_enabled(server, OTHER[0], PUBLIC_COUNT)
    gone = sub_of(server, "stream.online")["id"]
    failed = sub_of(server, "stream.offline")["id"]
    control(server, delete_subscription=gone)
    control(
        server,
        revoke_subscription=failed,
        reason="notification_failures_exceeded",
        deliver=False,
    )
    # Left from a favorite that changed: no one needs example_streamer.
    orphan = helix_create(
        server, "stream.online", "1", {"broadcaster_user_id": EXAMPLE[0]}
    )

    enqueue(server, reconcile)
    work(server)

    all_enabled(server, OTHER[0], PUBLIC_COUNT)
    ids = {s["id"] for s in at_twitch(server)}
    assert gone not in ids and failed not in ids
    # Within the grace period the orphan stays.
    assert orphan["id"] in ids
    (example,) = stored(server, Streamer, Streamer.id == EXAMPLE[0])
    assert example.unwanted_since is not None
    # Known here only from Twitch's list, by id: its login was looked up.
    assert example.login == EXAMPLE[1]

    enqueue(server, reconcile)
    output = work(server, UNSUBSCRIBE_GRACE_HOURS="0")

    assert orphan["id"] not in {s["id"] for s in at_twitch(server)}
    assert not stored(server, Subscription, Subscription.streamer_id == EXAMPLE[0])
    runs = stored(server, ReconcileRun)
    assert runs[-1].total_cost == PUBLIC_COUNT
    assert runs[-1].max_total_cost == 10_000
    assert "EventSub cost 5 of 10000" in output


def test_reconcile_warns_before_the_cost_limit(server):
    control(server, max_total_cost=6)
    add_fan(server, "viewer_one", *OTHER)
    enqueue(server, reconcile)
    output = work(server)
    all_enabled(server, OTHER[0], PUBLIC_COUNT)
    assert "EventSub cost 5 of Twitch's maximum 6" in output


# Tokens


def test_token_validation_ends_refused_tokens_and_refreshes_expiring_ones(server):
    viewer = requests.Session()
    sign_in(viewer, server.url, account="viewer_one")
    streamer = requests.Session()
    sign_in(streamer, server.url, account=EXAMPLE[1])
    with server.app.app_context():
        session = server.app.extensions["db"].session()
        row = session.scalar(
            sa.select(TwitchToken).where(TwitchToken.twitch_user_id == EXAMPLE[0])
        )
        before = row.access_token
        session.execute(
            sa.update(TwitchToken)
            .where(TwitchToken.id == row.id)
            .values(expires_at=sa.func.now())
        )
        session.commit()
        session.close()
    control(server, revoke_user="viewer_one")

    from jobs.tokens import validate_tokens

    enqueue(server, validate_tokens)
    work(server)

    tokens = {t.twitch_user_id: t for t in stored(server, TwitchToken)}
    assert tokens["2000001"].ended_at is not None
    assert tokens[EXAMPLE[0]].ended_at is None
    assert tokens[EXAMPLE[0]].access_token != before
    assert "Sign in" in viewer.get(f"{server.url}/").text


# The command line


def test_the_command_line_subscribes_lists_and_unsubscribes(server):
    result = cli(server, "subscribe", "Other_Streamer")
    assert result.returncode == 0, result.stderr
    assert "other_streamer: 5 created" in result.stdout
    assert "channel.cheer: not subscribed, the streamer has not connected" in (
        result.stdout
    )
    all_enabled(server, OTHER[0], PUBLIC_COUNT)

    listing = cli(server, "subscriptions", "--streamer", "other_streamer")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == [
        "streamer",
        "type",
        "version",
        "status",
        "cost",
        "created",
        "secret",
    ]
    assert sum("stream.online" in line and "current" in line for line in lines) == 1
    assert "5 subscription(s); 0 not on the current secret" in listing.stdout
    enabled = cli(server, "subscriptions", "--status", "enabled")
    assert enabled.stdout.count("other_streamer") == PUBLIC_COUNT

    gone = cli(server, "unsubscribe", "other_streamer")
    assert gone.returncode == 0, gone.stderr
    assert "5 deleted" in gone.stdout
    assert at_twitch(server) == []
    assert stored(server) == []


def test_a_scoped_type_twitch_already_delivers_is_not_reported_missing(server):
    """As in embedded mode: the simulator's channels come with subscriptions."""
    from app.simulator.eventsub_api import seed_runner_subscriptions

    seed_runner_subscriptions(server.app)
    enqueue(server, reconcile)
    work(server)

    result = cli(server, "subscribe", "example_streamer")

    assert result.returncode == 0, result.stderr
    # Still reported: a scoped type the simulator has no subscription for.
    reward_update = "channel.channel_points_custom_reward_redemption.update"
    assert f"{reward_update}: not subscribed, the streamer has not connected" in (
        result.stdout
    )
    assert "channel.cheer: not subscribed" not in result.stdout
    assert channel_state(server, EXAMPLE[1])["channel.cheer"]["live"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("subscribe", "nobody_at_all"), "there is no Twitch channel named"),
        (("unsubscribe", "nobody_at_all"), "there is no Twitch channel named"),
        (("subscribe", "no way"), "a Twitch login is 4 to 25 letters"),
        (("subscriptions", "--status", "lost"), "'enabled'"),
        (("subscriptions", "--streamer", "nobody_at_all"), "keeps no subscriptions"),
    ],
)
def test_the_command_line_refuses_unknown_logins_and_bad_options(server, args, message):
    result = cli(server, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


# Secret rotation


def test_rotating_the_secret_recreates_every_subscription_with_the_new_one(server):
    old = server.app.config["EVENTSUB_SECRET"]
    new = "a-new-eventsub-secret-0123456789"
    assert cli(server, "subscribe", "other_streamer").returncode == 0
    all_enabled(server, OTHER[0], PUBLIC_COUNT)
    before = {s["id"] for s in at_twitch(server)}

    # Every process is redeployed with the new secret and the old one.
    rotated = {"EVENTSUB_SECRET": new, "EVENTSUB_SECRET_PREVIOUS": old}
    server.app.config.update(rotated)
    listing = cli(server, "subscriptions", **rotated)
    assert "5 subscription(s); 5 not on the current secret" in listing.stdout
    assert listing.stdout.count("previous") == PUBLIC_COUNT
    # Deliveries signed with either secret are accepted meanwhile.
    for secret, status in ((old, 204), (new, 204), ("another-secret-42", 403)):
        body = compact(load_sample("stream.online.v1"))
        headers = signed_headers(body, secret=secret)
        answer = requests.post(
            f"{server.url}/webhooks/eventsub", data=body, headers=headers
        )
        assert answer.status_code == status

    enqueue(server, reconcile)
    work(server, **rotated)

    all_enabled(server, OTHER[0], PUBLIC_COUNT)
    assert not before & {s["id"] for s in at_twitch(server)}
    listing = cli(server, "subscriptions", **rotated)
    assert "5 subscription(s); 0 not on the current secret" in listing.stdout


# Where jobs run


def test_the_cron_thread_queues_each_periodic_job_once_per_interval(database_url):
    app = make_test_app(
        database_url,
        REDIS_URL=REDIS_URL,
        JOBS_QUEUE=f"test-cron-{uuid.uuid4().hex}",
        EVENTSUB_CALLBACK_URL="https://feed.example.com/webhooks/eventsub",
    )
    connection = redis.Redis.from_url(REDIS_URL)
    name = app.config["JOBS_QUEUE"]
    first = make_cron(app, connection, name)
    second = make_cron(app, connection, name)
    first_lock, second_lock = (
        leader_lock(connection, first),
        leader_lock(connection, second),
    )
    try:
        queued = tick(first, first_lock)
        assert sorted(j.func_name for j in queued) == [
            "jobs.storage.keep_storage",
            "jobs.subscriptions.reconcile",
            "jobs.tokens.validate_tokens",
        ]
        assert tick(second, second_lock) == []  # another worker leads
        assert tick(first, first_lock) == []  # not due again yet
        assert Queue(name, connection=connection).count == 3
    finally:
        first_lock.release()
        Queue(name, connection=connection).delete(delete_jobs=True)
        app.extensions["db"].engine.dispose()


def test_without_redis_jobs_and_periodic_jobs_run_in_the_web_process(database_url):
    def make_app(url):
        settings = simulated_twitch_config(url) | {"JOBS_IN_PROCESS": True}
        return make_test_app(database_url, **settings)

    live, http_server = serve(make_app)
    try:
        http = requests.Session()
        sign_in(http, live.url, account="viewer_one")
        choose_favorite(http, live.url, OTHER[1])
        runner_for(live.app).wait()
        all_enabled(live, OTHER[0], PUBLIC_COUNT)

        start_schedule(live.app, first_after=0)
        wait_until(lambda: stored(live, ReconcileRun))
        runner_for(live.app).wait()
        assert stored(live, ReconcileRun)[0].total_cost == PUBLIC_COUNT
    finally:
        http_server.shutdown()
        live.app.extensions["db"].engine.dispose()


def test_without_twitch_only_the_storage_job_is_scheduled(sqlite_url):
    """Embedded mode with the simulator off and no client id: no Twitch."""
    from jobs.queue import periodic_jobs
    from jobs.storage import keep_storage

    app = make_test_app(
        sqlite_url, TWITCH_CLIENT_ID=None, TWITCH_CLIENT_SECRET=None, SIMULATOR=False
    )
    assert [func for func, _ in periodic_jobs(app)] == [keep_storage]
    app.extensions["db"].engine.dispose()


def test_a_moderators_consent_subscribes_follows_in_the_moderators_name(server):
    mod = ("3000001", "mod_maria")
    scopes = ["moderator:read:followers", "moderator:read:shoutouts"]
    control(server, grant={"user": mod[1], "scopes": scopes})
    add_consent(
        server, mod[1], mod[0], scopes, channel_id=EXAMPLE[0], channel_login=EXAMPLE[1]
    )

    enqueue(server, ensure_streamer, *EXAMPLE)
    work(server)

    all_enabled(server, EXAMPLE[0], PUBLIC_COUNT + 3)
    follow = sub_of(server, "channel.follow")
    assert follow["condition"] == {
        "broadcaster_user_id": EXAMPLE[0],
        "moderator_user_id": mod[0],
    }
    types = channel_state(server, EXAMPLE[1])
    assert types["channel.follow"]["live"] and types["channel.shoutout.receive"]["live"]
    assert types["channel.cheer"]["reason"] == NOT_CONNECTED


def test_the_backfill_refreshes_a_token_helix_refuses_and_goes_on(server):
    http = requests.Session()
    sign_in(http, server.url, account=EXAMPLE[1])
    control(server, page_size=3)
    connect(http, server.url, EXAMPLE[1])
    box = server.app.extensions["token_box"]
    # The consent's access token is no longer accepted; its refresh token is.
    with server.app.app_context():
        session = server.app.extensions["db"].session()
        session.execute(
            sa.update(TwitchToken)
            .where(TwitchToken.purpose == "channel")
            .values(access_token=box.seal("expired-token"))
        )
        session.commit()
        session.close()

    enqueue(server, backfill_followers, EXAMPLE[0])
    work(server)

    # Three pages of followers, read after the refused token was refreshed.
    assert len(stored(server, Event, Event.event_type == "channel.follow")) == 7
    # The connect's backfill: refused, then 3 pages with one refreshed
    # token; the second backfill: 3 pages.
    assert simulator(server)["calls"]["followers"] == 7
    (consent,) = stored(server, TwitchToken, TwitchToken.purpose == "channel")
    assert server.app.extensions["token_box"].open(consent.access_token) != (
        "expired-token"
    )


def test_the_worker_runs_the_periodic_jobs_and_stays_up_when_idle(server, tmp_path):
    add_fan(server, "viewer_one", *OTHER)
    log = (tmp_path / "worker.log").open("w")
    queue = server.app.config["JOBS_QUEUE"]
    process = subprocess.Popen(
        [sys.executable, "cli.py", "worker", "--queue", queue],
        cwd=ROOT,
        env=worker_environ(server),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # RQ's cron scheduler queues the reconcile as the worker starts.
        wait_until(lambda: stored(server, ReconcileRun), timeout=30)
        all_enabled(server, OTHER[0], PUBLIC_COUNT)
        # Idle longer than redis-py's default socket timeout (5 s).
        time.sleep(6)
        assert process.poll() is None, (tmp_path / "worker.log").read_text()
        enqueue(server, ensure_streamer, *EXAMPLE)
        wait_until(lambda: at_twitch(server, EXAMPLE[0]), timeout=30)
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
        log.close()
