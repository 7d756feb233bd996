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
    assert not configured(tmp_path, TWITCH_CLIENT_ID="abc")["SIMULATOR"]
    assert configured(tmp_path, TWITCH_CLIENT_ID="abc", SIMULATOR="1")["SIMULATOR"]
    assert not configured(tmp_path, SIMULATOR="0")["SIMULATOR"]


@pytest.mark.parametrize("name", ["EVENTSUB_SECRET", "SECRET_KEY"])
def test_postgres_without_a_secret_stops_start_up_naming_it(tmp_path, name):
    environ = {
        "DATABASE_URL": "postgres://u@h/db",
        "EVENTSUB_SECRET": "0123456789abcdef",
        "SECRET_KEY": "k",
    }
    del environ[name]
    with pytest.raises(ConfigError, match=name):
        configured(tmp_path, **environ)


@pytest.mark.parametrize(
    "secret", ["short", "x" * 101, "ééééééééééé"], ids=["9", "101", "non-ascii"]
)
def test_a_secret_twitch_would_refuse_stops_start_up(tmp_path, secret):
    with pytest.raises(ConfigError, match="EVENTSUB_SECRET must be 10 to 100"):
        configured(tmp_path, EVENTSUB_SECRET=secret)


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
        ("SIMULATOR", "maybe"),
        ("SIMULATOR_RATE", "0"),
        ("LOG_LEVEL", "LOUD"),
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
