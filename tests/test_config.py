"""Settings: defaults, the embedded mode, and clear start-up errors."""

import pytest

from app.config import ConfigError
from app.config import finish_config
from app.config import load_config
from app.config import normalize_database_url


def configured(tmp_path, **environ):
    config = load_config(environ)
    finish_config(config, tmp_path)
    return config


def test_embedded_mode_generates_secrets_once_and_keeps_them(tmp_path):
    first = configured(tmp_path)
    second = configured(tmp_path)
    assert first["EMBEDDED"] and first["SIMULATOR"]
    assert first["DATABASE_URL"] == f"sqlite:///{tmp_path}/streamfeed.db"
    assert first["EVENTSUB_SECRET"] == second["EVENTSUB_SECRET"]
    assert (tmp_path / "eventsub_secret").stat().st_mode & 0o077 == 0


def test_twitch_credentials_turn_the_simulator_off(tmp_path):
    credentials = {"TWITCH_CLIENT_ID": "abc", "TWITCH_CLIENT_SECRET": "def"}
    assert not configured(tmp_path, **credentials)["SIMULATOR"]
    assert configured(tmp_path, SIMULATOR="1", **credentials)["SIMULATOR"]
    assert not configured(tmp_path, SIMULATOR="0")["SIMULATOR"]


def test_without_credentials_the_simulator_plays_twitch_on_this_port(tmp_path):
    config = configured(tmp_path, PORT="5123")
    simulator = "http://localhost:5123/simulator/twitch"
    assert config["TWITCH_SIMULATED"]
    assert config["TWITCH_AUTH_BASE_URL"] == simulator
    assert config["TWITCH_API_BASE_URL"] == simulator + "/helix"


def test_real_credentials_talk_to_twitch(tmp_path):
    config = configured(tmp_path, TWITCH_CLIENT_ID="abc", TWITCH_CLIENT_SECRET="d")
    assert not config["TWITCH_SIMULATED"]
    assert config["TWITCH_AUTH_BASE_URL"] == "https://id.twitch.tv"
    assert config["TWITCH_API_BASE_URL"] == "https://api.twitch.tv/helix"


@pytest.mark.parametrize("provider", ["TWITCH", "GITHUB"])
def test_a_client_id_without_its_secret_stops_start_up(tmp_path, provider):
    with pytest.raises(ConfigError, match=f"{provider}_CLIENT_SECRET must be set"):
        configured(tmp_path, **{f"{provider}_CLIENT_ID": "abc"})


PRODUCTION = {
    "DATABASE_URL": "postgres://u@h/db",
    "EVENTSUB_SECRET": "0123456789abcdef",
    "SECRET_KEY": "a-production-key-of-32-characters-or-more",
    "TWITCH_CLIENT_ID": "abc",
    "TWITCH_CLIENT_SECRET": "def",
}


def test_a_short_secret_key_stops_production_start_up_without_showing_it(tmp_path):
    environ = dict(PRODUCTION, SECRET_KEY="hunter2-is-short")
    with pytest.raises(ConfigError, match="SECRET_KEY must be at least 32") as caught:
        configured(tmp_path, **environ)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("name", ["EVENTSUB_SECRET", "SECRET_KEY", "TWITCH_CLIENT_ID"])
def test_postgres_without_a_secret_stops_start_up_naming_it(tmp_path, name):
    environ = dict(PRODUCTION)
    del environ[name]
    with pytest.raises(ConfigError, match=name):
        configured(tmp_path, **environ)


@pytest.mark.parametrize(
    "secret", ["short", "x" * 101, "ééééééééééé"], ids=["9", "101", "non-ascii"]
)
def test_a_secret_twitch_would_refuse_stops_start_up(tmp_path, secret):
    with pytest.raises(ConfigError, match="EVENTSUB_SECRET must be 10 to 100"):
        configured(tmp_path, EVENTSUB_SECRET=secret)


def test_a_previous_secret_twitch_would_refuse_stops_start_up(tmp_path):
    with pytest.raises(ConfigError) as caught:
        configured(tmp_path, EVENTSUB_SECRET_PREVIOUS="hunter2")
    assert "EVENTSUB_SECRET_PREVIOUS must be 10 to 100" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_subscription_settings_have_their_defaults(tmp_path):
    config = configured(tmp_path, PORT="5123")
    assert config["EVENTSUB_CALLBACK_URL"] == "http://localhost:5123/webhooks/eventsub"
    assert config["UNSUBSCRIBE_GRACE_HOURS"] == 24
    assert config["RECONCILE_MINUTES"] == 15
    assert config["EVENTSUB_SECRET_PREVIOUS"] is None
    assert (
        configured(tmp_path, UNSUBSCRIBE_GRACE_HOURS="0")["UNSUBSCRIBE_GRACE_HOURS"]
        == 0
    )


def test_an_error_never_shows_the_secret(tmp_path):
    with pytest.raises(ConfigError) as caught:
        configured(tmp_path, EVENTSUB_SECRET="hunter2")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEBHOOK_MAX_BYTES", "lots"),
        ("WEBHOOK_MAX_BYTES", "0"),
        ("PORT", "-1"),
        ("PORT", "65536"),
        ("SIMULATOR", "maybe"),
        ("SIMULATOR_RATE", "0"),
        ("LOG_LEVEL", "LOUD"),
        ("TWITCH_AUTH_BASE_URL", "id.twitch.tv"),
        ("TWITCH_API_BASE_URL", "ftp://api"),
        ("TRUSTED_PROXIES", "many"),
        ("TRUSTED_PROXIES", "9"),
        ("EVENTSUB_CALLBACK_URL", "feed.example.com/webhooks/eventsub"),
        ("UNSUBSCRIBE_GRACE_HOURS", "a day"),
        ("UNSUBSCRIBE_GRACE_HOURS", "-1"),
        ("RECONCILE_MINUTES", "0"),
        ("INGEST_BATCH_SIZE", "9" * 30),
        ("INGEST_BATCH_WAIT_MS", "2147483648"),
        ("EVENT_RETENTION_MONTHS", "9" * 5000),
        ("INGEST_METRICS_PORT", "70000"),
        ("EVENTSUB_CALLBACK_URL", "http:///////////"),
        ("EVENTSUB_CALLBACK_URL", "https://a b c"),
        ("EVENTSUB_CALLBACK_URL", "http://[::1"),
        ("CACHE_KEY_PREFIX", "two words"),
        ("EVENT_RETENTION_MONTHS", "24312"),
        ("MESSAGE_ID_RETENTION_DAYS", "1000000"),
        ("UNSUBSCRIBE_GRACE_HOURS", "2147483647"),
        ("INGEST_BATCH_WAIT_MS", "86400000"),
    ],
)
def test_invalid_values_name_their_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_config({name: value})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_heroku_style_urls_are_accepted(url, expected):
    assert normalize_database_url(url) == expected


def test_a_redis_url_of_another_scheme_stops_start_up_without_echoing_it(tmp_path):
    with pytest.raises(ConfigError, match="REDIS_URL must start with") as caught:
        configured(tmp_path, REDIS_URL="http://user:hunter2@cache:6379")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("garbage", "is not a database URL"),
        ("mysql://u:hunter2@h/db", "names mysql, not supported"),
        ("postgresql://u:hunter2@[::1/db", "is not a database URL"),
    ],
)
@pytest.mark.parametrize("secrets", ["set", "unset"])
def test_a_database_url_we_cannot_use_stops_start_up_naming_it(
    tmp_path, url, problem, secrets
):
    """These were tracebacks from SQLAlchemy or a missing driver, naming nothing;
    and without the secrets, the missing secrets were named instead."""
    environ = dict(PRODUCTION, DATABASE_URL=url)
    if secrets == "unset":
        environ = {"DATABASE_URL": url}
    with pytest.raises(ConfigError, match=f"DATABASE_URL {problem}") as caught:
        configured(tmp_path, **environ)
    assert "postgres:// or postgresql://" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["redis://:hunter2@[::1/0", "redis://:hunter2@cache:99999/0", "unix:///s?db=x"],
)
def test_a_redis_url_redis_cannot_read_stops_start_up(tmp_path, url):
    """These passed the scheme check and failed on the first request instead."""
    with pytest.raises(ConfigError, match="REDIS_URL cannot be read") as caught:
        configured(tmp_path, REDIS_URL=url)
    assert "hunter2" not in str(caught.value)
