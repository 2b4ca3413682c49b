"""Engine, session factory and scoped session. Explained in notebooks 04–07 and 11.

Three sets of functions, side by side:

* `seed_*` build exactly what many FastAPI services are written with
  (`sessionmaker(class_=AsyncSession)`, `async_scoped_session(scopefunc=current_task)`);
* `make_session_factory` and `session_scope` are the spelling SQLAlchemy 2 recommends:
  `async_sessionmaker` and one session per unit of work, closed when it ends;
* `make_fast_engine` and `make_read_engine` are the course's production advice
  (notebook 11): no pre-ping round trips, and a read-only AUTOCOMMIT engine for reads.
  A service keeps two engines: writes (units of work, `dbkit.retry.in_transaction`) on
  `make_fast_engine`, one-query reads on `make_read_engine`.
"""

from __future__ import annotations

from asyncio import current_task
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_scoped_session,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import sessionmaker

from dbkit.database import connect_args, database_url


def make_engine(url: URL | None = None, *, echo: bool = False, **options: Any) -> AsyncEngine:
    """`create_async_engine(url, echo=..., pool_pre_ping=True)`; url defaults to the
    configured database. Extra options (pool_size, ...) go straight to SQLAlchemy; the
    connect timeout and server settings come from dbkit.database.connect_args()."""
    options.setdefault("pool_pre_ping", True)
    options.setdefault("connect_args", connect_args())
    return create_async_engine(url or database_url(), echo=echo, **options)


def seed_session_factory(engine: AsyncEngine) -> sessionmaker[AsyncSession]:  # type: ignore[type-var]
    """The seed's factory: the 1.4 spelling, still working in 2.x."""
    return sessionmaker(engine, expire_on_commit=False, class_=AsyncSession)  # type: ignore[call-overload]


def seed_scoped_session(
    factory: sessionmaker[AsyncSession] | async_sessionmaker[AsyncSession],  # type: ignore[type-var]
) -> async_scoped_session[AsyncSession]:
    """The seed's registry: one session per asyncio task. Each task must end with
    `await Session.remove()`, or its session and connection are never given back.
    remove() must run in the task that used the session: FastAPI's
    `@app.middleware("http")` runs the endpoint in another task (notebook 07)."""
    return async_scoped_session(session_factory=factory, scopefunc=current_task)


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The recommended factory."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One session, one transaction: commit at the end, roll back on an exception, and
    always close (the connection goes back to the pool)."""
    async with factory() as session, session.begin():
        yield session


# --- the recommended engines (notebook 11) -------------------------------------------------


def check_alive_on_checkout(engine: AsyncEngine) -> None:
    """A pre-ping that costs no round trip: on checkout, ask the driver whether it has
    already seen the connection close (the server ended it, or restarted: the socket's EOF
    arrived while the connection sat in the pool). If so, the pool replaces it before the
    request uses it. What it cannot see (a silently dropped network path; psycopg, which
    does not watch an idle socket) is left to pool_recycle and to `dbkit.retry`."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _alive(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        closed = driver.is_closed() if hasattr(driver, "is_closed") else driver.closed
        if closed:  # asyncpg: is_closed(); psycopg: .closed
            raise exc.DisconnectionError("the server closed this pooled connection")


def make_fast_engine(url: URL | None = None, pool_size: int = 5, **options: Any) -> AsyncEngine:
    """The recommended engine for units of work (transactions that write): no pre-ping
    round trips; connections recycled before any server or network idle timeout can end
    them; dead ones noticed at checkout for free (`check_alive_on_checkout`). Run the
    work with `dbkit.retry.in_transaction`, which starts it again when the connection
    died before the COMMIT."""
    options.setdefault("pool_recycle", 1800)
    engine = make_engine(url, pool_pre_ping=False, pool_size=pool_size, **options)
    check_alive_on_checkout(engine)
    return engine


def read_only_connect_args(url: URL, connect_args: dict[str, Any]) -> dict[str, Any]:
    """`connect_args` plus `default_transaction_read_only=on`, sent in the connection's
    start-up packet (no round trip), so it holds for every statement, with or without a
    BEGIN. SQLAlchemy's `postgresql_readonly` would not do: it is a property of the BEGIN
    SQLAlchemy sends, and in AUTOCOMMIT nothing sends one (tests/test_recommended.py shows
    a write going through). PgBouncer 1.18 refuses unknown start-up parameters
    ("unsupported startup parameter"): behind it, connect the read engine as a role made
    with `ALTER ROLE reader SET default_transaction_read_only = on`, and read_only=False."""
    args = dict(connect_args)
    driver = url.get_driver_name()
    if driver == "asyncpg":
        settings = args.get("server_settings", {})
        args["server_settings"] = {**settings, "default_transaction_read_only": "on"}
    elif driver == "psycopg":
        args["options"] = f"{args.get('options', '')} -c default_transaction_read_only=on".strip()
    else:
        raise ValueError(f"no read-only start-up setting known for the {driver} driver")
    return args


def make_read_engine(
    url: URL | None = None, pool_size: int = 5, *, read_only: bool = True, **options: Any
) -> AsyncEngine:
    """An engine for requests that only read: `make_fast_engine` in AUTOCOMMIT, so no
    BEGIN and no COMMIT/ROLLBACK, one round trip per query; and read-only, so a write sent
    through it by mistake fails ("cannot execute UPDATE in a read-only transaction")
    instead of committing on the spot.

    What AUTOCOMMIT gives up (each is checked in tests/test_recommended.py):

    * no atomicity, no common snapshot: every statement is its own transaction, so two
      queries of one request may see the database at two moments;
    * `session.rollback()` undoes nothing: there is no transaction to roll back, and a
      `SET` stays on the connection, for the next request that borrows it;
    * `session.stream()` and other server-side cursors need a transaction: they fail;
    * `with_for_update()` locks nothing (a lock lasts until the end of a transaction, here
      the statement's): read-only turns it into an error instead; `SET LOCAL` does nothing.

    Use it where one query answers the request, or where the queries need not agree with
    each other; a request that writes, or whose reads must agree, is a unit of work on
    `make_fast_engine`. Read-only is a guard against mistakes, not a permission: a
    statement `SET default_transaction_read_only = off` lifts it. Withhold the privilege
    (a role that may only SELECT) where it must hold.

    A separate engine (and pool) rather than `engine.execution_options(isolation_level=
    "AUTOCOMMIT")`: that shares the pool but switches the isolation level at every
    checkout and back at every return, which costs more Python work (~180 function calls
    per request, measured with cProfile) than the two round trips it saves."""
    url = url or database_url()
    if read_only:
        options["connect_args"] = read_only_connect_args(url, options.get("connect_args", {}))
    # nothing to reset when a connection comes back: in AUTOCOMMIT there is no transaction
    # (the driver's rollback() would do nothing); a SET is not undone by either
    options.setdefault("pool_reset_on_return", None)
    return make_fast_engine(url, pool_size, isolation_level="AUTOCOMMIT", **options)


def make_read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on the read engine: as `make_session_factory` makes them, without
    autoflush (a read-only session has nothing to flush)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
