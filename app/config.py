"""Every setting streamfeed reads, in one place.

Configuration comes from environment variables only. Each setting below
names its variable, its type, its default and what it means; the README
lists the same table. A missing or invalid value raises ``ConfigError``
naming the variable, so a misconfigured process stops at start-up.

Two modes share one code path. Without ``DATABASE_URL`` (or with a SQLite
one) the app runs embedded: SQLite under ``instance/``, generated secrets
kept in that folder, and the built-in Twitch simulator unless Twitch
credentials are set. With a Postgres ``DATABASE_URL`` it runs in production
mode, where every secret must be given.
"""

import secrets
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[str], Any]
    default: Any
    help: str


def parse_bool(value: str) -> bool:
    """Read ``1/0``, ``true/false``, ``yes/no`` or ``on/off``."""
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"must be 1 or 0 (or true/false), got {value!r}")


# Far above any sensible setting, and what Redis, timers and the database
# all take: a larger number would only fail later, in the middle of work.
LARGEST_NUMBER = 2**31 - 1


def parse_positive_int(value: str) -> int:
    """Read an integer greater than zero (and at most ``LARGEST_NUMBER``)."""
    return parse_number(value, 1)


def parse_port(value: str) -> int:
    """Read a TCP port: 1 to 65535."""
    if not value.isascii() or not value.isdigit() or not 0 < int(value) <= 65535:
        raise ValueError(f"must be a port number from 1 to 65535, got {value!r}")
    return int(value)


def parse_whole_number(value: str) -> int:
    """Read an integer of zero or more (and at most ``LARGEST_NUMBER``)."""
    return parse_number(value, 0)


def parse_number(value: str, least: int, most: int = LARGEST_NUMBER) -> int:
    digits = value.isascii() and value.isdigit() and len(value) <= 10
    if not digits or not least <= int(value) <= most:
        raise ValueError(
            f"must be a whole number from {least} to {most}, got {value!r}"
        )
    return int(value)


def bounded(least: int, most: int) -> Callable[[str], int]:
    """A reader of whole numbers from ``least`` to ``most``: for durations,
    whose date arithmetic fails far below ``LARGEST_NUMBER``."""

    def parse(value: str) -> int:
        return parse_number(value, least, most)

    return parse


def parse_base_url(value: str) -> str:
    """Read an http(s) URL with a host, without a trailing slash."""
    try:
        host = urlsplit(value).hostname
    except ValueError:
        host = None
    spaced = any(c.isspace() for c in value)
    if not value.startswith(("http://", "https://")) or not host or spaced:
        raise ValueError(
            f"must be an http:// or https:// URL with a host name, got {value!r}"
        )
    return value.rstrip("/")


def parse_proxy_count(value: str) -> int:
    """Read how many proxies stand in front of the app: 0 to 5."""
    if not value.isascii() or not value.isdigit() or int(value) > 5:
        raise ValueError(f"must be a whole number from 0 to 5, got {value!r}")
    return int(value)


def parse_rate(value: str) -> float:
    """Read a rate of events per second, above 0 and at most 1000."""
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not 0 < number <= 1000:
        raise ValueError(f"must be a number above 0 and at most 1000, got {value!r}")
    return number


def parse_stream_key(value: str) -> str:
    """Read a Redis key name: printable ASCII without spaces, at most 200."""
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError(f"must be printable ASCII without spaces, got {value!r}")
    if len(value) > 200:
        raise ValueError("must be at most 200 characters")
    return value


def parse_directory(value: str) -> str:
    """Read the path of an existing directory."""
    if not Path(value).is_dir():
        raise ValueError(f"must name an existing directory, got {value!r}")
    return value


def parse_log_level(value: str) -> str:
    """Read one of the standard logging level names."""
    level = value.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError(
            f"must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {value!r}"
        )
    return level


SETTINGS = (
    Setting(
        "DATABASE_URL",
        str,
        None,
        "SQLAlchemy URL of the database; postgres:// is accepted. Unset: "
        "embedded mode with SQLite at instance/streamfeed.db.",
    ),
    Setting(
        "EVENTSUB_SECRET",
        str,
        None,
        "Secret shared with Twitch for webhook signatures, 10 to 100 ASCII "
        "characters. Required with Postgres; generated in embedded mode.",
    ),
    Setting(
        "EVENTSUB_SECRET_PREVIOUS",
        str,
        None,
        "The EventSub secret before the current one, while rotating: webhooks "
        "signed with either are accepted, and the reconcile re-creates every "
        "subscription with EVENTSUB_SECRET. Unset once `cli.py subscriptions` "
        "shows none left on the old one.",
    ),
    Setting(
        "EVENTSUB_CALLBACK_URL",
        parse_base_url,
        None,
        "Public https URL of /webhooks/eventsub that Twitch delivers to. "
        "Needed to create subscriptions (the worker refuses to start "
        "without it); the simulator's own in embedded mode.",
    ),
    Setting(
        "UNSUBSCRIBE_GRACE_HOURS",
        bounded(0, 876_000),
        24,
        "Hours a streamer keeps their subscriptions after no viewer has them "
        "as favorite (and no one pinned or connected the channel).",
    ),
    Setting(
        "MESSAGE_ID_RETENTION_DAYS",
        bounded(1, 36_500),
        7,
        "Days the message ids of stored events are kept to refuse "
        "redeliveries (Postgres); the daily storage job forgets older ones.",
    ),
    Setting(
        "EVENT_RETENTION_MONTHS",
        bounded(0, 1_200),
        0,
        "Months of raw events kept before the current one (Postgres): the "
        "daily storage job drops older monthly partitions; rollup counts "
        "stay. 0 keeps every month.",
    ),
    Setting(
        "RECONCILE_MINUTES",
        bounded(1, 525_600),
        15,
        "How often the periodic reconcile compares Twitch's subscriptions "
        "with the database.",
    ),
    Setting(
        "SECRET_KEY",
        str,
        None,
        "Flask's key for signing cookies. Required with Postgres; "
        "generated in embedded mode.",
    ),
    Setting(
        "LOG_LEVEL",
        parse_log_level,
        "INFO",
        "Level of the log lines written to standard output.",
    ),
    Setting(
        "PORT",
        parse_port,
        5000,
        "Port that `cli.py run` serves on.",
    ),
    Setting(
        "WEBHOOK_MAX_BYTES",
        parse_positive_int,
        1024 * 1024,
        "Largest request body accepted, in bytes; larger ones get 413.",
    ),
    Setting(
        "TWITCH_CLIENT_ID",
        str,
        None,
        "Client id of the Twitch application. Unset: the simulator plays "
        "Twitch in embedded mode.",
    ),
    Setting(
        "TWITCH_CLIENT_SECRET",
        str,
        None,
        "Client secret of the Twitch application.",
    ),
    Setting(
        "TWITCH_AUTH_BASE_URL",
        parse_base_url,
        None,
        "Base URL of Twitch's OAuth server. Unset: https://id.twitch.tv, or "
        "the simulator's own when it plays Twitch.",
    ),
    Setting(
        "TWITCH_API_BASE_URL",
        parse_base_url,
        None,
        "Base URL of the Helix API. Unset: https://api.twitch.tv/helix, or "
        "the simulator's own when it plays Twitch.",
    ),
    Setting(
        "GITHUB_CLIENT_ID",
        str,
        None,
        "Client id of a GitHub OAuth app; with GITHUB_CLIENT_SECRET it adds "
        "GitHub as a second way to sign in.",
    ),
    Setting(
        "GITHUB_CLIENT_SECRET",
        str,
        None,
        "Client secret of the GitHub OAuth app.",
    ),
    Setting(
        "REDIS_URL",
        str,
        None,
        "Redis URL (redis://, rediss:// or unix://). Set: sessions and caches "
        "live in Redis. Unset: files and memory under instance/.",
    ),
    Setting(
        "CACHE_KEY_PREFIX",
        parse_stream_key,
        "streamfeed:cache:",
        "Prefix of the cache keys in Redis (the app access token, user "
        "lookups). Only the cache: other Redis names are fixed, so each "
        "deployment needs a Redis of its own.",
    ),
    Setting(
        "INGEST_STREAM",
        parse_stream_key,
        "streamfeed:ingest",
        "Redis stream that buffers verified notifications for `cli.py "
        "ingest` (with REDIS_URL); dead letters go to this name + ':dead'.",
    ),
    Setting(
        "INGEST_BATCH_SIZE",
        parse_positive_int,
        1000,
        "Most notifications an ingest consumer stores in one transaction.",
    ),
    Setting(
        "INGEST_BATCH_WAIT_MS",
        bounded(1, 600_000),
        20,
        "How long an ingest consumer waits for a batch to fill once its "
        "first notification arrived, in milliseconds.",
    ),
    Setting(
        "INGEST_CLAIM_IDLE_MS",
        parse_positive_int,
        30_000,
        "A notification read but not acknowledged for this long (its "
        "consumer died) is claimed by another consumer, in milliseconds.",
    ),
    Setting(
        "INGEST_MAX_TRIES",
        parse_positive_int,
        3,
        "Tries to store a notification before it goes to the dead-letter "
        "stream with the reason.",
    ),
    Setting(
        "INGEST_METRICS_PORT",
        parse_port,
        None,
        "When set, each `cli.py ingest` process serves its own Prometheus "
        "metrics on this port (batch sizes, lag, stored, dead letters).",
    ),
    Setting(
        "PROMETHEUS_MULTIPROC_DIR",
        parse_directory,
        None,
        "Directory where the web processes of one host share their "
        "Prometheus counters (prometheus_client's multiprocess mode); set it "
        "when gunicorn runs more than one worker.",
    ),
    Setting(
        "FEED_QUEUE",
        parse_positive_int,
        256,
        "Frames a live feed websocket may fall behind by before the page is "
        "told to resync from its last cursor.",
    ),
    Setting(
        "TRUSTED_PROXIES",
        parse_proxy_count,
        0,
        "How many proxies in front of the app set X-Forwarded-Proto and "
        "X-Forwarded-Host (1 on Heroku), so that HTTPS is recognised.",
    ),
    Setting(
        "SIMULATOR",
        parse_bool,
        None,
        "1 forces the built-in Twitch simulator on, 0 off. Unset: on in "
        "embedded mode when TWITCH_CLIENT_ID is unset.",
    ),
    Setting(
        "SIMULATOR_RATE",
        parse_rate,
        0.5,
        "Notifications per second the simulator sends.",
    ),
)

SECRET_LENGTHS = range(10, 101)


def load_config(
    environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Read every setting from ``environ``, then apply ``overrides``.

    Overrides (the test mapping) replace parsed values and skip parsing.
    Raises ``ConfigError`` naming the first bad variable.
    """
    config = {}
    for setting in SETTINGS:
        raw = environ.get(setting.name, "").strip()
        if not raw:
            config[setting.name] = setting.default
            continue

        try:
            config[setting.name] = setting.parse(raw)
        except ValueError as e:
            raise ConfigError(f"{setting.name} {e}") from e

    config.update(overrides or {})
    return config


# Flask signs session cookies with SECRET_KEY; a short one can be guessed.
MIN_SECRET_KEY = 32


def finish_config(config: dict[str, Any], instance_path: Path) -> None:
    """Derive the mode-dependent values and check the secrets.

    In embedded mode the database, secret key and EventSub secret default to
    files under ``instance_path``; in production mode they must be set.
    """
    url = config["DATABASE_URL"]
    embedded = not url or url.startswith("sqlite")
    config["EMBEDDED"] = embedded
    if embedded:
        instance_path.mkdir(parents=True, exist_ok=True)
        config["DATABASE_URL"] = url or f"sqlite:///{instance_path}/streamfeed.db"
        for name, filename in (
            ("SECRET_KEY", "secret_key"),
            ("EVENTSUB_SECRET", "eventsub_secret"),
        ):
            if not config[name]:
                config[name] = read_or_create_secret(instance_path / filename)

    # The URL first: with one of another database, the missing secrets
    # below are not what is wrong.
    config["DATABASE_URL"] = normalize_database_url(config["DATABASE_URL"])
    check_database_url(config["DATABASE_URL"])
    for name in ("EVENTSUB_SECRET", "SECRET_KEY"):
        if not config[name]:
            raise ConfigError(f"{name} must be set when DATABASE_URL names Postgres")
    if not embedded and len(config["SECRET_KEY"]) < MIN_SECRET_KEY:
        raise ConfigError(
            f"SECRET_KEY must be at least {MIN_SECRET_KEY} characters in production "
            "(it signs the session cookies); make one with: python -c "
            "'import secrets; print(secrets.token_urlsafe(32))'"
        )

    check_eventsub_secret(config["EVENTSUB_SECRET"])
    if config["EVENTSUB_SECRET_PREVIOUS"]:
        check_eventsub_secret(
            config["EVENTSUB_SECRET_PREVIOUS"], "EVENTSUB_SECRET_PREVIOUS"
        )
    if config["SIMULATOR"] is None:
        config["SIMULATOR"] = embedded and not config["TWITCH_CLIENT_ID"]
    finish_twitch(config)
    check_redis_url(config["REDIS_URL"])


SIMULATED_CLIENT_ID = "streamfeed-simulator"
TWITCH_AUTH_BASE_URL = "https://id.twitch.tv"
TWITCH_API_BASE_URL = "https://api.twitch.tv/helix"


def finish_twitch(config: dict[str, Any]) -> None:
    """Decide who plays Twitch, and check that its credentials come in pairs.

    Without a client id the simulator, when on, plays Twitch's OAuth server
    and Helix at ``/simulator/twitch`` of this very app, so the real sign-in
    and Helix code runs locally. Production mode needs real credentials.
    """
    simulated = bool(config["SIMULATOR"]) and not config["TWITCH_CLIENT_ID"]
    config["TWITCH_SIMULATED"] = simulated
    if simulated:
        local = f"http://localhost:{config['PORT']}/simulator/twitch"
        config["TWITCH_CLIENT_ID"] = SIMULATED_CLIENT_ID
        config["TWITCH_CLIENT_SECRET"] = "simulated-" + config["SECRET_KEY"][:16]
        config["TWITCH_AUTH_BASE_URL"] = config["TWITCH_AUTH_BASE_URL"] or local
        config["TWITCH_API_BASE_URL"] = config["TWITCH_API_BASE_URL"] or (
            local + "/helix"
        )
        config["EVENTSUB_CALLBACK_URL"] = config.get("EVENTSUB_CALLBACK_URL") or (
            f"http://localhost:{config['PORT']}/webhooks/eventsub"
        )
    config["TWITCH_AUTH_BASE_URL"] = config["TWITCH_AUTH_BASE_URL"] or (
        TWITCH_AUTH_BASE_URL
    )
    config["TWITCH_API_BASE_URL"] = config["TWITCH_API_BASE_URL"] or (
        TWITCH_API_BASE_URL
    )

    if not config["EMBEDDED"] and not config["TWITCH_CLIENT_ID"]:
        raise ConfigError(
            "TWITCH_CLIENT_ID must be set when DATABASE_URL names Postgres"
        )
    for provider in ("TWITCH", "GITHUB"):
        client_id = config[f"{provider}_CLIENT_ID"]
        if client_id and not config[f"{provider}_CLIENT_SECRET"]:
            raise ConfigError(
                f"{provider}_CLIENT_SECRET must be set with {provider}_CLIENT_ID"
            )


def check_redis_url(url: str | None) -> None:
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        # The URL may hold a password, so it is not quoted back.
        raise ConfigError("REDIS_URL must start with redis://, rediss:// or unix://")
    if url:
        import redis

        try:
            redis.ConnectionPool.from_url(url)
        except ValueError as e:
            raise ConfigError(f"REDIS_URL cannot be read as a Redis URL: {e}") from e


DATABASES = {"postgresql": "postgres:// or postgresql://", "sqlite": "sqlite:///"}


def check_database_url(url: str) -> None:
    """Stop at a URL SQLAlchemy cannot read or a database we do not support.

    The URL may hold a password, so it is not quoted back.
    """
    import sqlalchemy as sa

    accepted = "; use " + " or ".join(DATABASES.values())
    try:
        backend = sa.engine.make_url(url).get_backend_name()
    except (sa.exc.ArgumentError, ValueError) as e:
        raise ConfigError("DATABASE_URL is not a database URL" + accepted) from e
    if backend not in DATABASES:
        raise ConfigError(f"DATABASE_URL names {backend}, not supported" + accepted)


def check_eventsub_secret(secret: str, name: str = "EVENTSUB_SECRET") -> None:
    """Twitch accepts 10 to 100 ASCII characters; anything else fails later."""
    problem = secret_problem(secret)
    if problem:
        raise ConfigError(f"{name} {problem}")


def secret_problem(secret: str) -> str | None:
    """Say what is wrong with an EventSub secret, without showing it."""
    if secret.isascii() and len(secret) in SECRET_LENGTHS:
        return None
    found = f"{len(secret)} characters"
    if not secret.isascii():
        found += ", not all ASCII"
    return f"must be 10 to 100 ASCII characters, got {found}"


def read_or_create_secret(path: Path) -> str:
    """Return the secret kept in ``path``, creating it on first use."""
    if path.exists():
        return path.read_text(encoding="ascii").strip()

    secret = secrets.token_hex(32)
    path.touch(mode=0o600)
    path.write_text(secret + "\n", encoding="ascii")
    return secret


def normalize_database_url(url: str) -> str:
    """Point Postgres URLs at psycopg 3; Heroku still hands out postgres://."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url
