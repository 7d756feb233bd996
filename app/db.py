"""The database: one engine and one scoped session per app.

``db`` is created unbound at import time and bound by ``init_app``; the
engine and session factory live in ``app.extensions["db"]``. Sessions are
per thread and removed when the app context ends.
"""

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import Flask
from flask import current_app

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


@dataclass
class Bound:
    engine: sa.Engine
    session: so.scoped_session[so.Session]


class Database:
    """Access to the current app's engine and session."""

    def init_app(self, app: Flask) -> None:
        engine = create_engine(app.config["DATABASE_URL"])
        factory = so.sessionmaker(engine, expire_on_commit=False)
        app.extensions["db"] = Bound(engine, so.scoped_session(factory))
        app.teardown_appcontext(self.remove_session)

    @property
    def engine(self) -> sa.Engine:
        return current_app.extensions["db"].engine

    @property
    def session(self) -> so.Session:
        return current_app.extensions["db"].session()

    def remove_session(self, exc: BaseException | None = None) -> None:
        current_app.extensions["db"].session.remove()


def create_engine(url: str) -> sa.Engine:
    """Make an engine, tuned for SQLite when the URL names it.

    Its errors never quote the statement's parameters: those hold whole
    webhook bodies and tokens, and error messages end up in the log.
    """
    if not url.startswith("sqlite"):
        engine = sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)
        sa.event.listen(engine, "connect", tune_postgres)
        return engine

    engine = sa.create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
    sa.event.listen(engine, "connect", tune_sqlite)
    return engine


def tune_postgres(connection, _record) -> None:
    """Set what reports rely on, whatever the server's own defaults are.

    Days are cut in UTC. JIT compilation costs report queries most of a
    second and saves nothing at our sizes (bench/reports.py --jit shows it).
    """
    cursor = connection.cursor()
    cursor.execute("SET TIME ZONE 'UTC'")
    cursor.execute("SET jit = off")
    cursor.close()
    connection.commit()


def tune_sqlite(connection, _record) -> None:
    """WAL lets the feed read while a webhook writes; wait rather than fail."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config(url: str):
    """Return an Alembic config for ``migrations/`` bound to ``url``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = url
    return config


def upgrade_schema(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (creating the schema if needed)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
