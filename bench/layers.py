"""The layers the benchmark compares: one small request, a primary key lookup, each way,
and one small unit of work that writes.

Each layer is an async context manager: `async with layer.open(url, pool_size) as request`
builds the engine or pool, yields `request(book_id) -> title`, and disposes of everything
when it ends. No engine or session is defined here: they all come from dbkit
(dbkit/engine.py, dbkit/retry.py), as a learner's service would import them; this file
only says what each request does with them.

The write is "rename a book" (PATCH /books/{id}): an `UPDATE ... RETURNING title` in a
transaction of its own. It sets the title the book already has (`Book <id>`), so every
request can check its answer; PostgreSQL writes a new row version all the same.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import psycopg
import psycopg_pool
from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from dbkit.engine import (
    make_engine,
    make_fast_engine,
    make_read_engine,
    make_read_session_factory,
    make_session_factory,
    seed_scoped_session,
    seed_session_factory,
    session_scope,
)
from dbkit.models import Book
from dbkit.retry import in_transaction, retry_once

Request = Callable[[int], Awaitable[str]]
T = TypeVar("T")

SQL = "SELECT id, title, author_id, published FROM books WHERE id = $1"
BOOKS = Book.__table__
BY_ID = select(BOOKS).where(BOOKS.c.id == bindparam("id"))  # Core: rows
BOOK_BY_ID = select(Book).where(Book.id == bindparam("id"))  # ORM: Book objects
RENAME_SQL = "UPDATE books SET title = $2 WHERE id = $1 RETURNING title"
# Built once, on the table: through a session, a Core statement skips the ORM's bulk
# UPDATE machinery, which exists to keep the objects loaded in the session in step (the
# unit of work has loaded none). About 235 Python calls fewer than update(Book).
RENAME = (
    update(BOOKS)
    .where(BOOKS.c.id == bindparam("book_id"))
    .values(title=bindparam("new_title"))
    .returning(BOOKS.c.title)
)


@dataclass(frozen=True)
class Layer:
    key: str  # short name, used in results.json and in the notebook
    name: str  # what the table shows
    open: Callable[[URL, int], AbstractAsyncContextManager[Request]]
    baseline: bool = False
    seed: bool = False
    recommended: bool = False  # the recommended read path
    recommended_write: bool = False  # the recommended unit of work


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


def psycopg_conninfo(url: URL) -> str:
    """The same, as a libpq connection string for psycopg."""
    args = asyncpg_args(url)
    args["dbname"] = args.pop("database")
    if "ssl" in args:  # asyncpg's ssl= takes libpq's sslmode names
        args["sslmode"] = args.pop("ssl")
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in args.items() if v is not None})


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


@asynccontextmanager
async def raw_asyncpg_write(url: URL, pool_size: int) -> AsyncIterator[Request]:
    """The unit of work in raw asyncpg: a transaction around one UPDATE ... RETURNING.
    What a write costs at the least, for comparison."""
    pool = await asyncpg.create_pool(**asyncpg_args(url), min_size=pool_size, max_size=pool_size)

    async def request(book_id: int) -> str:
        async with pool.acquire() as conn, conn.transaction():
            return await conn.fetchval(RENAME_SQL, book_id, f"Book {book_id}")

    try:
        yield request
    finally:
        await pool.close()


# --- the peer driver: psycopg 3 -------------------------------------------------------------


@asynccontextmanager
async def raw_psycopg(url: URL, pool_size: int) -> AsyncIterator[Request]:
    """psycopg 3 with psycopg_pool, default settings: `pool.connection()` hands out a
    connection in a transaction (BEGIN before the first query) and commits when the block
    ends; psycopg prepares a statement once it has run it 5 times on a connection."""
    pool = psycopg_pool.AsyncConnectionPool(
        psycopg_conninfo(url), min_size=pool_size, max_size=pool_size, open=False
    )
    await pool.open(wait=True)

    async def request(book_id: int) -> str:
        async with pool.connection() as conn:
            cursor = await conn.execute(SQL.replace("$1", "%s"), (book_id,))
            row = await cursor.fetchone()
        assert row is not None
        return row[1]

    try:
        yield request
    finally:
        await pool.close()


def psycopg_url(url: URL) -> URL:
    return url.set(drivername="postgresql+psycopg")


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


@asynccontextmanager
async def scope_fast(url: URL, pool_size: int) -> AsyncIterator[Request]:
    """Notebook 07's request (session_scope: a session and a transaction per request) on
    the recommended engine, around the read: BEGIN, the query, COMMIT. What a read costs
    that is wrapped in a unit of work."""
    async with disposing(make_fast_engine(url, pool_size)) as engine:
        factory = make_session_factory(engine)

        async def lookup(book_id: int) -> str:
            async with session_scope(factory) as session:
                book = await session.get(Book, book_id)
            return book.title

        async def request(book_id: int) -> str:
            return await retry_once(lookup, book_id)

        yield request


@asynccontextmanager
async def recommended(url: URL, pool_size: int) -> AsyncIterator[Request]:
    """The recommended read path, exactly as dbkit gives it to a service: a session per
    request from the read factory (a read-only engine in AUTOCOMMIT: one round trip), a
    statement built once, retried once if its connection was dead."""
    async with disposing(make_read_engine(url, pool_size)) as engine:
        reads = make_read_session_factory(engine)

        async def lookup(book_id: int) -> str:
            async with reads() as session:
                # a statement built once, at import: cheaper per call than session.get(),
                # which builds its SELECT anew each time (~85 fewer Python calls)
                book = await session.scalar(BOOK_BY_ID, {"id": book_id})
            return book.title

        async def request(book_id: int) -> str:
            return await retry_once(lookup, book_id)

        yield request


@asynccontextmanager
async def recommended_psycopg(url: URL, pool_size: int) -> AsyncIterator[Request]:
    """The same recommended read path, on SQLAlchemy's `postgresql+psycopg` async dialect."""
    async with recommended(psycopg_url(url), pool_size) as request:
        yield request


async def rename_book(session: AsyncSession, book_id: int) -> str:
    title = await session.scalar(RENAME, {"book_id": book_id, "new_title": f"Book {book_id}"})
    assert title is not None
    return title


@asynccontextmanager
async def recommended_write(url: URL, pool_size: int) -> AsyncIterator[Request]:
    """The recommended unit of work: `in_transaction` (one session, one transaction,
    COMMIT at the end, started again if the connection died before the COMMIT) on the
    recommended engine. BEGIN, the UPDATE ... RETURNING, COMMIT: three round trips."""
    async with disposing(make_fast_engine(url, pool_size)) as engine:
        factory = make_session_factory(engine)

        async def request(book_id: int) -> str:
            return await in_transaction(factory, lambda session: rename_book(session, book_id))

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
    Layer("scope_fast", "session_scope around the read, no pre-ping", scope_fast),
    Layer(
        "recommended",
        "recommended read: session on the read-only AUTOCOMMIT engine",
        recommended,
        recommended=True,
    ),
    Layer("core_read", "Core, AUTOCOMMIT (no ORM)", core_read),
    Layer(
        "asyncpg_write",
        "write, raw asyncpg: a transaction, UPDATE ... RETURNING",
        raw_asyncpg_write,
    ),
    Layer(
        "recommended_write",
        "recommended unit of work: in_transaction, UPDATE ... RETURNING",
        recommended_write,
        recommended_write=True,
    ),
    Layer("psycopg", "peer: raw psycopg 3 pool (psycopg_pool, defaults)", raw_psycopg),
    Layer(
        "recommended_psycopg",
        "peer: the recommended read on postgresql+psycopg",
        recommended_psycopg,
    ),
]
