"""The course's database: the one the settings name, else the embedded server, started.
Explained in notebooks/00_setup.ipynb.

`dbkit.settings` decides where the database is and starts nothing; this is the one place
that starts the embedded server (dbkit.server) when the settings name no other.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL

from dbkit import server
from dbkit.settings import Settings, Target, configured, load


def target(settings: Settings | None = None) -> Target:
    """The database to use, and which setting chose it."""
    s = settings or load()
    found = configured(s)
    if found is not None:
        return found
    url = server.start(s.dbkit_pgdata).url
    return Target(url, "the embedded server (nothing else set)", {"timeout": s.db_connect_timeout})


def database_url() -> URL:
    """The URL of the course's database (password inside; print it and it is masked)."""
    return target().url


def connect_args() -> dict[str, Any]:
    """What dbkit's engines pass to asyncpg besides the URL: `create_async_engine(url,
    connect_args=connect_args())`. It holds the connect timeout (asyncpg's `timeout`) and
    the server settings DATABASE_URL asked for (application_name, options)."""
    return target().connect_args
