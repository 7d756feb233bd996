"""``cli.py ingest`` and ``cli.py dead-letters``: the stream's consumers."""

import logging
import signal
import threading
from datetime import datetime

import click
import sqlalchemy as sa
import sqlalchemy.orm as so
from tabulate import tabulate

logger = logging.getLogger(__name__)


def production_app():
    """The configured app, which must have REDIS_URL for these commands."""
    from cli import make_app

    app = make_app()
    if not app.config["REDIS_URL"]:
        raise click.ClickException(
            "configuration: REDIS_URL must be set; without Redis, webhooks "
            "are stored in the request and there is nothing to ingest"
        )
    return app


@click.command()
@click.option("--name", help="Consumer name in the group (default: host-pid).")
def ingest(name: str | None) -> None:
    """Store buffered notifications: one consumer of the ingest stream.

    Run as many as needed; each takes its own share. Stops cleanly on
    SIGTERM or Ctrl-C after the batch in hand.
    """
    from app.ingest import Consumer
    from app.ingest import Settings
    from app.ingest import tune_garbage_collection
    from app.partitions import ensure_partitions

    app = production_app()
    config = app.config
    engine = app.extensions["db"].engine
    try:
        created = ensure_partitions(engine)
    except sa.exc.SQLAlchemyError as e:
        # Storing waits for the database anyway; a month without its
        # partition lands in events_default until `cli.py partitions` runs.
        logger.warning(
            "Ingest: partitions not checked, database unavailable (%s)",
            type(getattr(e, "orig", e)).__name__,
        )
        created = []
    if created:
        logger.info("Created event partitions: %s", ", ".join(created))
    if config["INGEST_METRICS_PORT"]:
        from prometheus_client import start_http_server

        port = config["INGEST_METRICS_PORT"]
        try:
            start_http_server(port)
        except OSError as e:
            raise click.ClickException(
                f"INGEST_METRICS_PORT {port} cannot be served ({e.strerror}); "
                "another process on this host may have it"
            ) from e

    stop = threading.Event()

    def request_stop(signum, _frame):
        logger.info("Ingest: %s received, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    sessions = so.sessionmaker(engine, expire_on_commit=False)
    tune_garbage_collection()
    consumer = Consumer(
        app.extensions["redis"],
        sessions,
        Settings.from_config(config),
        name=name,
        stop=stop,
    )
    consumer.run()


def check_entry_id(ctx, param, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        head, _, tail = value.partition("-")
        digits = all(p.isascii() and p.isdigit() and len(p) <= 20 for p in (head, tail))
        # Both halves are 64-bit numbers in Redis.
        if not digits or max(int(head), int(tail)) >= 2**64:
            raise click.BadParameter(
                f"must be a stream entry id such as 1764831234567-0 (as "
                f"listed); got {value!r}"
            )
    return values


def redis_errors_are_clean(command):
    """Turn a Redis outage into a one-line error instead of a traceback."""
    import functools

    import redis

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except redis.RedisError as e:
            raise click.ClickException(f"Redis unavailable ({type(e).__name__})") from e

    return wrapper


@click.command("dead-letters")
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="Most dead letters to list, oldest first.",
)
@click.option(
    "--replay",
    "replay_ids",
    multiple=True,
    callback=check_entry_id,
    metavar="ID",
    help="Put this dead letter back on the ingest stream (repeatable).",
)
@click.option(
    "--replay-all", is_flag=True, help="Put every dead letter back on the stream."
)
@redis_errors_are_clean
def dead_letters(limit: int, replay_ids: tuple[str, ...], replay_all: bool) -> None:
    """List notifications ingest could not store, and why; or replay them."""
    from app.ingest import dead_letter_stream
    from app.ingest import replay_dead_letters

    if replay_ids and replay_all:
        raise click.UsageError("give --replay ID or --replay-all, not both")
    app = production_app()
    client = app.extensions["redis"]
    stream = app.config["INGEST_STREAM"]
    dead = dead_letter_stream(stream)

    if replay_all:
        replay_ids = tuple(i.decode() for i, _ in client.xrange(dead))
    elif replay_ids:
        missing = [i for i in replay_ids if not client.xrange(dead, min=i, max=i)]
        if missing:
            raise click.BadParameter(
                f"no dead letter with id {', '.join(missing)}; run "
                "`cli.py dead-letters` to list them",
                param_hint="--replay",
            )
    if replay_ids:
        new_ids = replay_dead_letters(client, stream, list(replay_ids))
        click.echo(f"Replayed {len(new_ids)} dead letters onto {stream}.")
        return

    entries = client.xrange(dead, count=limit)
    total = client.xlen(dead)
    if not entries:
        click.echo(f"No dead letters in {dead}.")
        return
    rows = []
    for entry_id, fields in entries:
        text = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
        rows.append(
            [
                entry_id.decode(),
                text.get("message_id", ""),
                short_time(text.get("failed_at", "")),
                text.get("reason", ""),
            ]
        )
    click.echo(tabulate(rows, ["id", "message id", "failed at", "reason"]))
    click.echo(f"{len(rows)} of {total} dead letters shown; --replay ID puts one back.")


def short_time(text: str) -> str:
    try:
        return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return text


@click.command()
@click.option(
    "--months-ahead",
    type=click.IntRange(0, 24),
    default=3,
    show_default=True,
    help="Months after this one to create partitions for.",
)
def partitions(months_ahead: int) -> None:
    """Create the monthly partitions of events ahead of need (Postgres).

    Safe to run at any time and from several processes; `cli.py ingest`
    runs it at start-up and the worker's daily storage job runs it too.
    """
    from app.partitions import ensure_partitions
    from cli import make_app

    app = make_app()
    engine = app.extensions["db"].engine
    if engine.dialect.name != "postgresql":
        click.echo("SQLite keeps one events table; nothing to partition.")
        return
    created = ensure_partitions(engine, months_ahead)
    click.echo(
        f"Created {', '.join(created)}." if created else "Every partition exists."
    )
