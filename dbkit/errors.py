"""Setup problems as one clear line: the cause and the fix, never the password.

Explained in notebooks/00_setup.ipynb. `explain()` turns the exceptions that asyncpg,
SQLAlchemy and the operating system raise when a connection cannot be made into a
`SetupError` whose message names what is wrong and what to do about it.
"""

from __future__ import annotations

import socket

import asyncpg
from sqlalchemy.engine import URL


class SetupError(Exception):
    """The database is not reachable as configured. The message says why and what to do."""


def where(url: URL) -> str:
    """'host:port' or 'the embedded server' for a message; never the password."""
    host = url.query.get("host") or url.host or "localhost"
    if isinstance(host, tuple):
        host = host[0]
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
