"""Setup problems as one clear line: the cause and the fix, never the password.

Explained in notebooks/00_setup.ipynb. `explain()` turns the exceptions that asyncpg,
SQLAlchemy and the operating system raise when a connection cannot be made into a
`SetupError` whose message names what is wrong and what to do about it. `check()`
connects once and reads what `make doctor` and `make test` check before anything else.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL

from dbkit.urls import host_of


class SetupError(Exception):
    """The database is not reachable as configured. The message says why and what to do."""

    def _render_traceback_(self) -> list[str]:
        """In a notebook, IPython shows this instead of a traceback: the one line."""
        return [f"SetupError: {self}"]


def where(url: URL) -> str:
    """'host:port' or 'the embedded server' for a message; never the password."""
    host = host_of(url)
    if host.startswith("/"):
        return f"the unix socket in {host}"
    if "@" in host:  # an unencoded '@' in a password ends up in the host: hide that part
        host = "***@" + host.rsplit("@", 1)[1]
    return f"{host}:{url.port or 5432}"


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (SQLAlchemy keeps the driver's in .orig)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]
    return seen


def explain(exc: BaseException, url: URL) -> SetupError | None:
    """A SetupError for a connection failure we recognise, else None."""
    at, user, db = where(url), url.username or "postgres", url.database
    for e in _causes(exc):
        if isinstance(e, SetupError):
            return e
        if isinstance(e, asyncpg.InvalidPasswordError):
            return SetupError(
                f"PostgreSQL at {at} refused the password for user {user!r}. "
                "Fix: check DB_PASS (or the password in DATABASE_URL)."
            )
        if isinstance(e, asyncpg.InvalidCatalogNameError):
            return SetupError(
                f"Database {db!r} does not exist on {at}. "
                f"Fix: create it (createdb {db}) or set DB_NAME to one that exists."
            )
        if isinstance(e, asyncpg.InvalidAuthorizationSpecificationError):
            return SetupError(
                f"PostgreSQL at {at} does not accept user {user!r} ({e}). "
                "Fix: check DB_USER, or ask the server's admin for a role."
            )
        if isinstance(e, asyncpg.InsufficientPrivilegeError) and "create database" in str(e):
            return no_createdb(user, at)
        if isinstance(e, TimeoutError):
            return SetupError(
                f"PostgreSQL at {at} did not answer within the connect timeout. Fix: check "
                "that DB_HOST/DB_PORT point at PostgreSQL, or allow more seconds with "
                "DB_CONNECT_TIMEOUT (or connect_timeout= in DATABASE_URL)."
            )
        if isinstance(e, ConnectionError) and "rejected SSL upgrade" in str(e):
            given = "DATABASE_URL" if url.query.get("ssl") else "PGSSLMODE"
            mode = url.query.get("ssl") or os.environ.get("PGSSLMODE")
            return SetupError(
                f"PostgreSQL at {at} does not offer SSL, but sslmode={mode} requires it. "
                f"Fix: remove sslmode from {given} (or use sslmode=prefer), or turn SSL on "
                "in the server."
            )
        if isinstance(e, socket.gaierror):
            return SetupError(
                f"The host in {at} is not known ({e.strerror}). "
                "Fix: check DB_HOST (a password holding '@' must be percent-encoded in a URL)."
            )
        if isinstance(e, ConnectionRefusedError | FileNotFoundError):
            return SetupError(
                f"Nothing is listening at {at}. "
                "Fix: start the server, or correct DB_HOST/DB_PORT (or DATABASE_URL)."
            )
        if isinstance(e, TimeoutError | OSError) and not isinstance(e, asyncpg.PostgresError):
            return SetupError(
                f"Could not reach {at}: {type(e).__name__}: {e}. "
                "Fix: check DB_HOST/DB_PORT and that the server accepts connections."
            )
    return None


@dataclass(frozen=True)
class ServerFacts:
    """What `check()` learns from one connection."""

    version: str
    role: str
    can_create_databases: bool
    max_connections: int
    reserved: int  # superuser_reserved_connections
    in_use: int  # connections to a database right now, this one included

    @property
    def headroom(self) -> int:
        return self.max_connections - self.reserved - self.in_use


FACTS = text(
    "SELECT current_setting('server_version'), current_user,"
    " (SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user),"
    " current_setting('max_connections')::int,"
    " current_setting('superuser_reserved_connections')::int,"
    # pg_stat_activity hides other roles' backend_type from a non-superuser; this is visible
    " (SELECT sum(numbackends)::int FROM pg_stat_database)"
)


async def check(url: URL, connect_args: dict[str, Any]) -> ServerFacts:
    """Connect once (within the connect timeout) and read a few facts; a failure is the
    SetupError `explain()` gives, or one line naming the exception and what the server
    said (a driver's own message may quote the settings, so it is left out)."""
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(FACTS)).one()
    except Exception as exc:
        server_said = [e for e in _causes(exc) if isinstance(e, asyncpg.PostgresError)]
        said = f": {server_said[0]}" if server_said else ""  # the server's words, not ours
        raise explain(exc, url) or SetupError(
            f"Could not use PostgreSQL at {where(url)}: {type(exc).__name__}{said}. "
            "Fix: check DATABASE_URL or DB_* (python -m dbkit doctor)."
        ) from None
    finally:
        await engine.dispose()
    return ServerFacts(*row)


def no_createdb(user: str, at: str) -> SetupError:
    """The notebooks and the tests each make databases of their own: CREATEDB is needed."""
    return SetupError(
        f"User {user!r} may not create databases on {at}, and every notebook makes its own. "
        f"Fix: ask the server's admin for ALTER ROLE {user} CREATEDB, or use a role that has it."
    )
