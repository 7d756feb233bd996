"""cli.py as an operator runs it, in a subprocess."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from app.simulator.commands import trigger
from conftest import SECRET
from conftest import free_port
from conftest import production_env

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, **environ: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | environ
    return subprocess.run(
        [sys.executable, "cli.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_db_upgrade_creates_the_schema(tmp_path):
    url = f"sqlite:///{tmp_path}/cli.db"
    result = run_cli("db", "upgrade", DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert "Schema upgraded" in result.stdout


@pytest.mark.parametrize("revision", ["garbage", ""])
def test_db_upgrade_to_an_unknown_revision_exits_2_saying_what_is_accepted(
    tmp_path, revision
):
    """Alembic's CommandError (or a bare AssertionError) used to escape."""
    url = f"sqlite:///{tmp_path}/cli.db"
    result = run_cli("db", "upgrade", "--revision", revision, DATABASE_URL=url)
    assert result.returncode == 2, result.stderr
    assert "must be head or one of 0001" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("host", ["999.1.1.1", "no spaces", "-dash.example"])
def test_run_on_a_host_that_is_no_address_exits_2_saying_what_is_accepted(host):
    """gunicorn retried binding to 999.1.1.1 for seconds, then exited 1."""
    result = run_cli("run", "--host", host)
    assert result.returncode == 2, result.stderr
    assert "must be an IP address (such as 0.0.0.0 or ::) or a host name" in (
        result.stderr
    )


def test_a_bad_setting_stops_with_its_name_and_no_traceback(tmp_path):
    result = run_cli(
        "db", "upgrade", DATABASE_URL=f"sqlite:///{tmp_path}/x.db", PORT="http"
    )
    assert result.returncode == 1
    assert "PORT must be a port number from 1 to 65535" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("where", ["gone", "/proc/self"])
def test_a_metrics_directory_it_cannot_use_stops_any_command(tmp_path, where):
    result = run_cli("--help", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / where))
    assert result.returncode == 1
    message = "PROMETHEUS_MULTIPROC_DIR must name an existing directory"
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    # gunicorn itself reads WEB_CONCURRENCY as a number before this file runs.
    [("WEB_CONCURRENCY", "0"), ("WEB_CONNECTIONS", "-5"), ("WEB_CONNECTIONS", "x")],
)
def test_a_bad_gunicorn_setting_stops_it_naming_the_variable(tmp_path, name, value):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"DATABASE_URL": f"sqlite:///{tmp_path}/g.db", name: value}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "gunicorn"), "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"{name} must be a whole number from 1 to" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.postgres
def test_ingest_says_when_its_metrics_port_is_taken(postgres_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = subprocess.run(
            [sys.executable, "cli.py", "ingest"],
            cwd=ROOT,
            env=production_env(postgres_url, INGEST_METRICS_PORT=port),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"INGEST_METRICS_PORT {port} cannot be served" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_the_app_running_embedded_commands_say_which_port(tmp_path):
    url = f"sqlite:///{tmp_path}/e.db"
    assert run_cli("db", "upgrade", DATABASE_URL=url).returncode == 0
    port = str(free_port())  # nothing serves the simulator there
    for args in (["subscribe", "example_streamer"], ["reconcile"]):
        result = run_cli(*args, DATABASE_URL=url, PORT=port)
        assert result.returncode == 1, result.stderr
        assert f"the same PORT (now {port})" in result.stderr
        assert "Traceback" not in result.stderr


def test_an_argument_that_is_not_utf8_is_a_usage_error():
    result = run_cli("explain", "h2\udcff")  # the byte 0xFF on the command line
    assert result.returncode == 2
    assert "arguments must be UTF-8 text" in result.stderr


def test_a_database_that_cannot_be_reached_ends_a_command_in_one_line():
    port = free_port()  # nothing listens there
    url = f"postgresql://nobody:hunter2-secret@127.0.0.1:{port}/test"
    for args in (["explain", "abc"], ["partitions"]):
        result = run_cli(*args, **production_env(url))
        assert result.returncode == 1, result.stderr
        assert "the database of DATABASE_URL cannot do it" in result.stderr
        assert "Traceback" not in result.stderr
        assert "hunter2" not in result.stderr


def test_a_database_file_that_cannot_be_opened_is_named(tmp_path):
    url = f"sqlite:///{tmp_path}/no/such/dir/x.db"
    result = run_cli("db", "upgrade", DATABASE_URL=url)
    assert result.returncode == 1
    assert "the database of DATABASE_URL cannot do it" in result.stderr
    assert "unable to open database file" in result.stderr
    assert "Traceback" not in result.stderr


def test_postgres_without_secrets_stops_naming_the_variable():
    result = run_cli("db", "upgrade", DATABASE_URL="postgres://nobody@127.0.0.1/x")
    assert result.returncode == 1
    assert "EVENTSUB_SECRET must be set" in result.stderr


def test_run_serves_the_app_and_the_simulator_fills_it(tmp_path):
    """The embedded default end to end: gunicorn, simulator, real webhooks."""
    url = f"sqlite:///{tmp_path}/run.db"
    assert run_cli("db", "upgrade", DATABASE_URL=url).returncode == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PORT")}
    env |= {"DATABASE_URL": url, "SIMULATOR": "1", "SIMULATOR_RATE": "20"}
    server = subprocess.Popen(
        [sys.executable, "cli.py", "run", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        events = wait_for_events(f"http://localhost:{port}/api/events")
        # Sign-in goes to the simulator on --port, not on PORT's default.
        consent = requests.get(f"http://localhost:{port}/auth/login/twitch", timeout=5)
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert consent.status_code == 200
    assert consent.url.startswith(f"http://localhost:{port}/simulator/twitch/")
    assert len(events) >= 5
    assert {e["streamer"]["login"] for e in events} <= {
        "example_streamer",
        "other_streamer",
    }


def wait_for_events(url: str, minimum: int = 5) -> list[dict]:
    """Poll the API until it lists ``minimum`` events (or give up after 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            events = requests.get(url, timeout=2).json()["events"]
        except requests.ConnectionError:
            events = None
        if events is not None and len(events) >= minimum:
            return events
        time.sleep(0.3)
    return []


def test_trigger_sends_signed_samples_our_webhook_stores(live_server):
    """`cli.py trigger` against the real receiver: three new events, stored."""
    result = CliRunner().invoke(
        trigger,
        [
            "channel.cheer",
            "--to",
            live_server.url + "/webhooks/eventsub",
            "--secret",
            SECRET,
            "--streamer",
            "other_streamer",
            "--count",
            "3",
        ],
    )
    stored = requests.get(
        live_server.url + "/api/streamers/other_streamer/events", timeout=5
    ).json()["events"]
    assert result.exit_code == 0, result.output
    assert result.output.count(" 204") == 3
    assert [e["type"] for e in stored] == ["channel.cheer"] * 3


def test_trigger_with_the_wrong_secret_reports_the_refusals(live_server):
    url = live_server.url + "/webhooks/eventsub"
    args = ["channel.follow", "--to", url, "--secret", "not-the-right-secret"]
    result = CliRunner().invoke(trigger, args)
    assert result.exit_code == 1
    assert " 403" in result.output


def test_a_bad_log_level_stops_the_cli_naming_it():
    result = run_cli("trigger", "--list", LOG_LEVEL="chatty")
    assert result.returncode == 1
    assert "LOG_LEVEL must be" in result.stderr


def test_gunicorn_with_the_config_file_serves_pages_beside_open_feeds(tmp_path):
    """The sync worker would block every request behind one open websocket."""
    import websocket

    url = f"sqlite:///{tmp_path}/g.db"
    assert run_cli("db", "upgrade", DATABASE_URL=url).returncode == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"DATABASE_URL": url, "PORT": str(port), "WEB_CONCURRENCY": "1"}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_events(f"http://localhost:{port}/api/events", minimum=0)
        feeds = [
            websocket.create_connection(
                f"ws://localhost:{port}/ws/streamers/example_streamer", timeout=5
            )
            for _ in range(3)
        ]
        response = requests.get(f"http://localhost:{port}/", timeout=5)
        for feed in feeds:
            feed.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert response.status_code == 200


def test_the_worker_needs_redis_and_says_so(tmp_path):
    result = run_cli("worker", "--burst", DATABASE_URL=f"sqlite:///{tmp_path}/w.db")
    assert result.returncode == 1
    assert "REDIS_URL must be set for the worker" in result.stderr
    assert "Traceback" not in result.stderr
