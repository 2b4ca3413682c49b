"""The project's Alembic environment (async). Explained in notebooks/01_alembic_init.ipynb.

What it adds to `alembic init -t async`:

* the URL comes from dbkit's settings, or from `config.attributes["url"]` when dbkit runs
  a migration for a notebook's own database; alembic.ini holds no credentials;
* a connection passed in `config.attributes["connection"]` is used as it is, so a caller
  already inside an event loop (a notebook) can migrate through `conn.run_sync(...)`;
* logging is configured from alembic.ini only when Alembic runs as a command, not when it
  is called in-process (`config.attributes["configure_logger"] = False`);
* a PostgreSQL advisory lock is held while migrating: when several app instances run
  `alembic upgrade head` at once, one migrates and the others wait, then find nothing to do.
"""

import asyncio
from logging.config import fileConfig

from alembic import context
from alembic.util import CommandError
from sqlalchemy import Connection, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from dbkit import database
from dbkit.errors import SetupError, explain
from dbkit.models import Base

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)

target_metadata = Base.metadata

# Any fixed number, the same in every instance of this app: the key of the advisory lock.
MIGRATION_LOCK_KEY = 7_270_001


def database_url() -> URL:
    url = config.attributes.get("url")
    if url is not None:
        return url
    try:
        return database.database_url()
    except SetupError as exc:
        raise CommandError(str(exc)) from None


def run_migrations_offline() -> None:
    """`alembic upgrade --sql`: print the SQL, touch no database."""
    context.configure(
        dialect_name="postgresql",
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        # Held until this transaction ends; a second instance waits here, then reads the
        # alembic_version the first one committed and has nothing left to do.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def run_async_migrations() -> None:
    url = database_url()  # connect_args: the connect timeout, server settings
    engine = create_async_engine(url, poolclass=NullPool, connect_args=database.connect_args())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    except Exception as exc:
        if (problem := explain(exc, url)) is not None:
            raise CommandError(str(problem)) from None
        raise
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
