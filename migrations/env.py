"""Alembic environment: runs migrations on the URL the app is configured with.

``app.db.upgrade_schema`` puts the URL in the Alembic config's attributes;
nothing here reads the environment.
"""

from alembic import context

from app.db import create_engine
from app.models import Base

config = context.config


def run_migrations_online() -> None:
    engine = create_engine(config.attributes["database_url"])
    with engine.connect() as connection:
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
