"""The layers the benchmark compares: one small request, a primary key lookup, each way.

Each layer is an async context manager: `async with layer.open(url, pool_size) as request`
builds the engine or pool, yields `request(book_id) -> title`, and disposes of everything
when it ends. The engines come from dbkit (dbkit/engine.py), as in notebooks 04–07.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import bindparam, event, exc, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dbkit.engine import (
    make_engine,
    make_session_factory,
    seed_scoped_session,
    seed_session_factory,
    session_scope,
)
from dbkit.models import Book

Request = Callable[[int], Awaitable[str]]
T = TypeVar("T")

SQL = "SELECT id, title, author_id, published FROM books WHERE id = $1"
BOOKS = Book.__table__
BY_ID = select(BOOKS).where(BOOKS.c.id == bindparam("id"))  # Core: rows
BOOK_BY_ID = select(Book).where(Book.id == bindparam("id"))  # ORM: Book objects


@dataclass(frozen=True)
class Layer:
    key: str  # short name, used in results.json and in the notebook
    name: str  # what the table shows
    open: Callable[[URL, int], AbstractAsyncContextManager[Request]]
    baseline: bool = False
    seed: bool = False
    recommended: bool = False


def asyncpg_args(url: URL) -> dict[str, Any]:
    """The URL's parts as asyncpg.connect() takes them (host may be a socket directory)."""
    host = url.query.get("host") or url.host
    args: dict[str, Any] = {
        "user": url.username,
        "password": url.password,
        "host": host[0] if isinstance(host, tuple) else host,
        "port": url.port,
        "database": url.database,
    }
    if "ssl" in url.query:
        args["ssl"] = url.query["ssl"]
    return args


# --- the baseline -------------------------------------------------------------------------


@asynccontextmanager
async def raw_asyncpg(url: URL, pool_size: int) -> AsyncIterator[Request]:
    """asyncpg's own pool, default settings: the fastest way to run this query from Python.
    (On release the pool resets the connection: one more round trip, asyncpg's default.)"""
    pool = await asyncpg.create_pool(**asyncpg_args(url), min_size=pool_size, max_size=pool_size)

    async def request(book_id: int) -> str:
        async with pool.acquire() as conn:
            row = await conn.fetchrow(SQL, book_id)
        return row["title"]

    try:
        yield request
    finally:
        await pool.close()


# --- the seed, as learners bring it --------------------------------------------------------


@asynccontextmanager
async def seed(url: URL, pool_size: int) -> AsyncIterator[Request]:
    """echo=True (to /dev/null), pool_pre_ping=True, sessionmaker(class_=AsyncSession)
    under async_scoped_session(scopefunc=current_task), remove() after each request."""
    logger = logging.getLogger("sqlalchemy.engine.Engine")
    before = list(logger.handlers)
    engine = make_engine(url, echo=True, pool_size=pool_size)  # pre_ping=True is dbkit's default
    # echo=True logs through a StreamHandler on sys.stdout: point it at /dev/null while we
    # run (the cost of formatting and writing every line stays), and put it back after
    null = open(os.devnull, "w")  # noqa: ASYNC230 - opening /dev/null does not block
    streams = {
        h: h.setStream(null) for h in logger.handlers if isinstance(h, logging.StreamHandler)
    }
    Session = seed_scoped_session(seed_session_factory(engine))

    async def request(book_id: int) -> str:
        try:
            book = await Session().get(Book, book_id)
            return book.title
        finally:
            await Session.remove()

    try:
        yield request
    finally:
        await engine.dispose()
        for handler, stream in streams.items():
            if handler in before:
                handler.setStream(stream)
            else:  # the handler echo=True added: take it away again
                logger.removeHandler(handler)
        null.close()


# --- SQLAlchemy, layer by layer ------------------------------------------------------------


@asynccontextmanager
async def disposing(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def core_connect(url: URL, pool_size: int) -> AsyncIterator[Request]:
    """SQLAlchemy Core: `async with engine.connect()` and one `select()`."""
    async with disposing(make_engine(url, pool_pre_ping=False, pool_size=pool_size)) as engine:

        async def request(book_id: int) -> str:
            async with engine.connect() as conn:
                row = (await conn.execute(BY_ID, {"id": book_id})).one()
            return row.title

        yield request


def session_get(pre_ping: bool) -> Callable[[URL, int], AbstractAsyncContextManager[Request]]:
    @asynccontextmanager
    async def open_(url: URL, pool_size: int) -> AsyncIterator[Request]:
        """An AsyncSession per request, as notebook 07's yield dependency makes it
        (`async with factory() as session`, factory = dbkit's make_session_factory:
        async_sessionmaker(engine, expire_on_commit=False)); `session.get()`."""
        engine = make_engine(url, pool_pre_ping=pre_ping, pool_size=pool_size)
        async with disposing(engine):
            factory = make_session_factory(engine)

            async def request(book_id: int) -> str:
                async with factory() as session:
                    book = await session.get(Book, book_id)
                return book.title

            yield request

    return open_


# --- the recommended path ------------------------------------------------------------------


def check_alive_on_checkout(engine: AsyncEngine) -> None:
    """A pre-ping that costs no round trip: on checkout, ask the driver whether it has
    already seen the connection close (the server ended it, or restarted: the socket's EOF
    arrived while the connection sat in the pool). If so, the pool replaces it before the
    request uses it. What it cannot see (a silently dropped network path) is left to
    pool_recycle and to retrying idempotent work, see `retry_once`."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _alive(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise exc.DisconnectionError("the server closed this pooled connection")


def make_fast_engine(url: URL, pool_size: int = 5, **options: Any) -> AsyncEngine:
    """The recommended engine: no pre-ping round trips; connections recycled before any
    server or network idle timeout can end them; dead ones noticed at checkout for free."""
    options.setdefault("pool_recycle", 1800)
    engine = make_engine(url, pool_pre_ping=False, pool_size=pool_size, **options)
    check_alive_on_checkout(engine)
    return engine


async def retry_once(work: Callable[[], Awaitable[T]]) -> T:
    """Run idempotent work; if its connection turned out dead, run it once more (the pool
    has replaced the connection by then)."""
    try:
        return await work()
    except exc.DBAPIError as error:
        if not error.connection_invalidated:
            raise
        return await work()


def make_read_engine(url: URL, pool_size: int = 5, **options: Any) -> AsyncEngine:
    """An engine for requests that only read: the recommended engine in AUTOCOMMIT, so no
    BEGIN and no COMMIT/ROLLBACK, one round trip per query. Each statement then sees its
    own snapshot: use it where one query answers the request, or where the queries need
    not agree with each other; everything that writes uses `session_scope`.

    A separate engine (and pool) rather than `engine.execution_options(isolation_level=
    "AUTOCOMMIT")`: that shares the pool but switches the isolation level at every
    checkout and back at every return, which costs more Python work (~180 function calls
    per request, measured with cProfile) than the two round trips it saves."""
    return make_fast_engine(url, pool_size, isolation_level="AUTOCOMMIT", **options)


def make_read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on the read engine, as `make_session_factory` makes them."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def scope_fast(url: URL, pool_size: int) -> AsyncIterator[Request]:
    """Notebook 07's request (session_scope: a session and a transaction per request) on
    the recommended engine: BEGIN, the query, COMMIT, and nothing else. What a request
    that writes costs."""
    async with disposing(make_fast_engine(url, pool_size)) as engine:
        factory = make_session_factory(engine)

        async def lookup(book_id: int) -> str:
            async with session_scope(factory) as session:
                book = await session.get(Book, book_id)
            return book.title

        async def request(book_id: int) -> str:
            return await retry_once(lambda: lookup(book_id))

        yield request


@asynccontextmanager
async def recommended(url: URL, pool_size: int) -> AsyncIterator[Request]:
    """The recommended path for this request, a read: a session per request from the
    read factory (AUTOCOMMIT: one round trip), a statement built once, retried once if
    its connection was dead."""
    async with disposing(make_read_engine(url, pool_size)) as engine:
        reads = make_read_session_factory(engine)

        async def lookup(book_id: int) -> str:
            async with reads() as session:
                # a statement built once, at import: cheaper per call than session.get(),
                # which builds its SELECT anew each time (~85 fewer Python calls)
                book = await session.scalar(BOOK_BY_ID, {"id": book_id})
            return book.title

        async def request(book_id: int) -> str:
            return await retry_once(lambda: lookup(book_id))

        yield request


@asynccontextmanager
async def core_read(url: URL, pool_size: int) -> AsyncIterator[Request]:
    """The least SQLAlchemy can do: Core, AUTOCOMMIT, no ORM objects. One round trip."""
    async with disposing(make_read_engine(url, pool_size)) as engine:

        async def request(book_id: int) -> str:
            async with engine.connect() as conn:
                row = (await conn.execute(BY_ID, {"id": book_id})).one()
            return row.title

        yield request


LAYERS = [
    Layer("asyncpg", "raw asyncpg pool (baseline)", raw_asyncpg, baseline=True),
    Layer("seed", "seed: echo + pre-ping + scoped session", seed, seed=True),
    Layer("core", "Core engine.connect()", core_connect),
    Layer(
        "session_preping",
        "AsyncSession per request + pre-ping (notebook 07's dependency)",
        session_get(True),
    ),
    Layer("session", "AsyncSession per request, no pre-ping", session_get(False)),
    Layer("scope_fast", "session_scope (BEGIN ... COMMIT), no pre-ping", scope_fast),
    Layer(
        "recommended",
        "recommended: session on the read engine (AUTOCOMMIT)",
        recommended,
        recommended=True,
    ),
    Layer("core_read", "Core, AUTOCOMMIT (no ORM)", core_read),
]
