"""streamfeed's command line: ``python cli.py --help`` lists the commands."""

import ipaddress
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
import sqlalchemy as sa
import sqlalchemy.orm as so

from app import configure_logging
from app import create_app
from app.config import ConfigError
from app.config import parse_log_level

logger = logging.getLogger(__name__)


def make_app():
    """Build the app, turning a configuration error into a clean exit."""
    try:
        return create_app()
    except ConfigError as e:
        raise click.ClickException(f"configuration: {e}") from e


class Commands(click.Group):
    """The command group; a database that cannot be reached, or refuses what
    a command asks, ends it with one line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except sa.exc.DBAPIError as e:
            # The driver's first line, never the URL (it may hold a password).
            words = (str(e.orig).strip().splitlines() or [""])[0]
            raise click.ClickException(
                f"the database of DATABASE_URL cannot do it: "
                f"{type(e.orig).__name__}: {words}"
            ) from e


@click.group(cls=Commands)
def cli() -> None:
    """streamfeed: a live feed of a Twitch channel's EventSub events."""
    for argument in sys.argv[1:]:
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:
            raise click.UsageError(
                f"arguments must be UTF-8 text; got {argument!r}"
            ) from None
    try:
        level = parse_log_level(os.environ.get("LOG_LEVEL") or "INFO")
    except ValueError as e:
        raise click.ClickException(f"configuration: LOG_LEVEL {e}") from e
    configure_logging(level)


@cli.group()
def db() -> None:
    """Manage the database schema (Alembic migrations)."""


def check_revision(ctx, param, value: str) -> str:
    """Accept ``head`` or a revision in migrations/versions."""
    from alembic.script import ScriptDirectory

    from app.db import alembic_config

    script = ScriptDirectory.from_config(alembic_config(""))
    known = sorted(revision.revision for revision in script.walk_revisions())
    if value in ("head", *known):
        return value
    raise click.BadParameter(
        f"must be head or one of {', '.join(known)}; got {value!r}"
    )


@db.command()
@click.option(
    "--revision",
    default="head",
    show_default=True,
    callback=check_revision,
    help="Target: head or a revision id such as 0002.",
)
def upgrade(revision: str) -> None:
    """Create or upgrade the schema on the configured database."""
    from app.db import upgrade_schema

    app = make_app()
    upgrade_schema(app.config["DATABASE_URL"], revision)
    click.echo(f"Schema upgraded to {revision}.")


HOST_NAME = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def check_host(ctx, param, value: str) -> str:
    """Accept an IP address or a host name to bind to."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not HOST_NAME.fullmatch(value):
            raise click.BadParameter(
                f"must be an IP address (such as 0.0.0.0 or ::) or a host name; "
                f"got {value!r}"
            ) from None
    return value


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    callback=check_host,
    help="Bind address.",
)
@click.option("--port", type=click.IntRange(1, 65535), help="Default: PORT, 5000.")
@click.option(
    "--threads",
    type=click.IntRange(4, 1000),
    default=100,
    show_default=True,
    help="Threads serving requests; each open feed holds one.",
)
def run(host: str, port: int | None, threads: int) -> None:
    """Serve the app with gunicorn, and the simulator when it is on."""
    from app.server import serve

    if port:
        # As PORT, for the worker's app too: the simulator's URLs (sign-in,
        # Helix, the webhook) are built from it.
        os.environ["PORT"] = str(port)
    app = make_app()
    serve(app.config, host, app.config["PORT"], threads)


@contextmanager
def app_context() -> Iterator[so.Session]:
    """Give a command a database session inside the configured app."""
    from app.extensions import db

    with make_app().app_context():
        yield db.session


def register_commands() -> None:
    from app.explain import explain
    from app.ingest_commands import dead_letters
    from app.ingest_commands import ingest
    from app.ingest_commands import partitions
    from app.report_commands import check_rollups
    from app.report_commands import report
    from app.simulator.commands import simulate
    from app.simulator.commands import trigger
    from jobs.commands import reconcile
    from jobs.commands import subscribe
    from jobs.commands import subscriptions
    from jobs.commands import unsubscribe
    from jobs.commands import worker

    commands = (trigger, simulate, report, check_rollups)
    commands += (ingest, dead_letters, partitions, explain)
    commands += (subscribe, unsubscribe, subscriptions, reconcile, worker)
    for command in commands:
        cli.add_command(command)


register_commands()

if __name__ == "__main__":
    cli()
