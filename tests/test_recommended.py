"""The recommended path (dbkit.engine.make_read_engine, make_fast_engine, dbkit.retry):
the read engine refuses writes, what AUTOCOMMIT gives up is what its docstring says, the
free liveness check replaces a dead connection, and the unit of work writes in three
round trips. Round trips are counted on the wire (bench/wire.py), never timed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import bindparam, exc, func, select, text, update
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from bench.layers import asyncpg_args
from bench.wire import WireCounter
from dbkit import fresh_database, migrate
from dbkit.engine import (
    make_fast_engine,
    make_read_engine,
    make_read_session_factory,
    make_session_factory,
    read_only_connect_args,
)
from dbkit.models import Author, Book
from dbkit.retry import in_transaction, retry_once
from dbkit.show import pool

pytestmark = pytest.mark.anyio

READ_ONLY = "25006"  # read_only_sql_transaction
NO_TRANSACTION = "25P01"  # no_active_sql_transaction


def sqlstate(error: exc.DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


@pytest.fixture
async def url() -> AsyncIterator[URL]:
    url = await fresh_database("test_recommended")
    await migrate.upgrade(url)
    conn = await asyncpg.connect(**asyncpg_args(url))
    author = await conn.fetchval("INSERT INTO authors (name) VALUES ('Le Guin') RETURNING id")
    await conn.execute("INSERT INTO books (id, title, author_id) VALUES (7, 'Book 7', $1)", author)
    await conn.close()
    yield url


async def count_authors(url: URL) -> int:
    conn = await asyncpg.connect(**asyncpg_args(url))
    try:
        return await conn.fetchval("SELECT count(*) FROM authors")
    finally:
        await conn.close()


# --- read-only ----------------------------------------------------------------------------


async def test_the_read_engine_refuses_a_write_and_writes_nothing(url: URL) -> None:
    engine = make_read_engine(url, pool_size=1)
    reads = make_read_session_factory(engine)
    with pytest.raises(exc.DBAPIError) as caught:
        async with reads() as session:
            session.add(Author(name="never written"))
            await session.commit()
    assert sqlstate(caught.value) == READ_ONLY, caught.value
    with pytest.raises(exc.DBAPIError) as caught:
        async with engine.connect() as conn:
            await conn.execute(text("DELETE FROM books"))
    assert sqlstate(caught.value) == READ_ONLY
    assert await count_authors(url) == 1
    async with reads() as session:  # and it still reads
        assert (await session.get(Book, 7)).title == "Book 7"
    assert pool(engine)["checked_out"] == 0
    await engine.dispose()


async def test_postgresql_readonly_does_not_hold_on_an_autocommit_connection(url: URL) -> None:
    """Why dbkit sets default_transaction_read_only at connect time: SQLAlchemy's
    postgresql_readonly is a property of the BEGIN, and AUTOCOMMIT sends no BEGIN."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT").execution_options(
        postgresql_readonly=True
    )
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO authors (name) VALUES ('written anyway')"))
    await engine.dispose()
    assert await count_authors(url) == 2


async def test_read_only_costs_no_round_trip_and_a_read_is_one(url: URL) -> None:
    async with WireCounter(url) as wire:
        engine = make_read_engine(wire.url, pool_size=1)
        reads = make_read_session_factory(engine)
        async with reads() as session:  # connect, prepare
            await session.get(Book, 7)
        wire.reset()
        async with reads() as session:
            book = await session.get(Book, 7)
        assert book.title == "Book 7"
        assert len(wire.trips) == 1 and wire.trips[0].startswith("SELECT"), wire.trips
        await engine.dispose()


async def test_the_read_engine_on_psycopg_is_read_only_too(url: URL) -> None:
    engine = make_read_engine(url.set(drivername="postgresql+psycopg"), pool_size=1)
    async with engine.connect() as conn:
        assert await conn.scalar(text("SHOW default_transaction_read_only")) == "on"
        with pytest.raises(exc.DBAPIError) as caught:
            await conn.execute(text("INSERT INTO authors (name) VALUES ('never written')"))
    assert sqlstate(caught.value) == READ_ONLY
    await engine.dispose()
    assert await count_authors(url) == 1


def test_read_only_keeps_the_callers_connect_args() -> None:
    url = URL.create("postgresql+asyncpg", database="x")
    args = read_only_connect_args(url, {"server_settings": {"application_name": "api"}})
    assert args == {
        "server_settings": {"application_name": "api", "default_transaction_read_only": "on"}
    }
    with pytest.raises(ValueError, match="no read-only start-up setting"):
        read_only_connect_args(URL.create("postgresql+pg8000"), {})


async def test_read_only_is_a_guard_not_a_permission(url: URL) -> None:
    engine = make_read_engine(url, pool_size=1)
    async with engine.connect() as conn:
        await conn.execute(text("SET default_transaction_read_only = off"))
        await conn.execute(text("INSERT INTO authors (name) VALUES ('written after all')"))
    await engine.dispose()
    assert await count_authors(url) == 2


# --- what AUTOCOMMIT gives up ---------------------------------------------------------------


async def test_every_statement_is_its_own_transaction(url: URL) -> None:
    """No common snapshot: two statements of one session run in two transactions (their
    transaction start times differ); in a unit of work they share one."""

    async def two_starts(session: AsyncSession) -> tuple[object, object]:
        first = await session.scalar(text("SELECT transaction_timestamp()"))
        await session.execute(text("SELECT pg_sleep(0.01)"))
        return first, await session.scalar(text("SELECT transaction_timestamp()"))

    reads = make_read_engine(url, pool_size=1)
    async with make_read_session_factory(reads)() as session:
        first, second = await two_starts(session)
    assert first != second
    writes = make_fast_engine(url, pool_size=1)
    first, second = await in_transaction(make_session_factory(writes), two_starts)
    assert first == second
    await reads.dispose()
    await writes.dispose()


async def test_rollback_undoes_nothing_and_a_set_stays_for_the_next_request(url: URL) -> None:
    engine = make_read_engine(url, pool_size=1)
    reads = make_read_session_factory(engine)
    async with reads() as session:
        await session.execute(text("SET application_name = 'left behind'"))
        await session.rollback()
        assert await session.scalar(text("SHOW application_name")) == "left behind"
    async with reads() as session:  # the next request, on the same pooled connection
        assert await session.scalar(text("SHOW application_name")) == "left behind"
    await engine.dispose()


async def test_stream_needs_a_transaction(url: URL) -> None:
    engine = make_read_engine(url, pool_size=1)
    with pytest.raises(exc.DBAPIError) as caught:
        async with make_read_session_factory(engine)() as session:
            await session.stream(select(Book))
    assert sqlstate(caught.value) == NO_TRANSACTION
    await engine.dispose()


async def test_with_for_update_fails_instead_of_locking_nothing(url: URL) -> None:
    engine = make_read_engine(url, pool_size=1)
    with pytest.raises(exc.DBAPIError) as caught:
        async with make_read_session_factory(engine)() as session:
            await session.scalar(select(Book).where(Book.id == 7).with_for_update())
    assert sqlstate(caught.value) == READ_ONLY
    await engine.dispose()
    # without read-only, the lock would be taken and given back in the same statement
    plain = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with plain.connect() as conn:
        await conn.execute(select(Book.id).where(Book.id == 7).with_for_update())
        held = await conn.scalar(
            text("SELECT count(*) FROM pg_locks WHERE relation = 'books'::regclass")
        )
    assert held == 0
    await plain.dispose()


async def test_set_local_does_nothing(url: URL) -> None:
    engine = make_read_engine(url, pool_size=1)
    async with make_read_session_factory(engine)() as session:
        before = await session.scalar(text("SHOW statement_timeout"))
        await session.execute(text("SET LOCAL statement_timeout = '1234ms'"))
        assert await session.scalar(text("SHOW statement_timeout")) == before
    await engine.dispose()


# --- liveness without a ping --------------------------------------------------------------


async def kill_the_pooled_connection(url: URL, pid: int) -> None:
    admin = await asyncpg.connect(**asyncpg_args(url))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await admin.close()
    await asyncio.sleep(0.05)  # let the client read the closed socket


async def test_a_dead_pooled_connection_is_replaced_at_checkout_without_a_ping(url: URL) -> None:
    async with WireCounter(url) as wire:
        engine = make_read_engine(wire.url, pool_size=1)
        reads = make_read_session_factory(engine)
        async with reads() as session:
            pid = await session.scalar(text("SELECT pg_backend_pid()"))
        await kill_the_pooled_connection(url, pid)
        wire.reset()
        async with reads() as session:  # no retry here: the checkout check alone
            assert (await session.get(Book, 7)).title == "Book 7"
        assert wire.connects == 1
        assert not any(trip in (";", "BEGIN;") for trip in wire.trips), wire.trips
        await engine.dispose()


async def test_retry_once_recovers_what_the_checkout_check_did_not_see(url: URL) -> None:
    """An engine without the check (as if the death were silent): the first try fails
    with connection_invalidated, retry_once runs it again on a new connection."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)
    reads = make_read_session_factory(engine)

    async def title() -> str:
        async with reads() as session:
            return (await session.get(Book, 7)).title

    async with reads() as session:
        pid = await session.scalar(text("SELECT pg_backend_pid()"))
    await kill_the_pooled_connection(url, pid)
    with pytest.raises(exc.DBAPIError) as caught:
        await title()
    assert caught.value.connection_invalidated
    async with reads() as session:
        pid = await session.scalar(text("SELECT pg_backend_pid()"))
    await kill_the_pooled_connection(url, pid)
    assert await retry_once(title) == "Book 7"
    await engine.dispose()


# --- the unit of work -----------------------------------------------------------------------

RENAME = (
    update(Book.__table__)
    .where(Book.__table__.c.id == bindparam("book_id"))
    .values(title=bindparam("new_title"))
    .returning(Book.__table__.c.title)
)


async def test_the_unit_of_work_writes_in_three_round_trips_and_commits(url: URL) -> None:
    async with WireCounter(url) as wire:
        engine = make_fast_engine(wire.url, pool_size=1)
        factory = make_session_factory(engine)

        async def rename(session: AsyncSession, title: str) -> str | None:
            return await session.scalar(RENAME, {"book_id": 7, "new_title": title})

        await in_transaction(factory, lambda s: rename(s, "warm-up"))
        wire.reset()
        assert await in_transaction(factory, lambda s: rename(s, "The Dispossessed")) == (
            "The Dispossessed"
        )
        assert [t.split()[0] for t in wire.trips] == ["BEGIN;", "UPDATE", "COMMIT;"], wire.trips
        assert pool(engine)["checked_out"] == 0
        await engine.dispose()
    conn = await asyncpg.connect(**asyncpg_args(url))  # committed: another connection sees it
    assert await conn.fetchval("SELECT title FROM books WHERE id = 7") == "The Dispossessed"
    await conn.close()


async def test_the_unit_of_work_is_atomic(url: URL) -> None:
    engine = make_fast_engine(url, pool_size=1)

    async def half_done(session: AsyncSession) -> None:
        session.add(Author(name="never committed"))
        await session.flush()
        assert await session.scalar(select(func.count()).select_from(Author)) == 2
        raise ValueError("the second half failed")

    with pytest.raises(ValueError):
        await in_transaction(make_session_factory(engine), half_done)
    await engine.dispose()
    assert await count_authors(url) == 1


async def test_on_psycopg_the_checkout_check_sees_nothing_and_retry_once_recovers(url: URL) -> None:
    """psycopg does not watch an idle connection's socket: a connection the server ended
    is found dead on first use (bench/README.md, the peer)."""
    engine = make_read_engine(url.set(drivername="postgresql+psycopg"), pool_size=1)
    reads = make_read_session_factory(engine)

    async def title() -> str:
        async with reads() as session:
            return (await session.get(Book, 7)).title

    async def kill() -> None:
        async with reads() as session:
            pid = await session.scalar(text("SELECT pg_backend_pid()"))
        await kill_the_pooled_connection(url, pid)

    await kill()
    with pytest.raises(exc.DBAPIError) as caught:
        await title()
    assert caught.value.connection_invalidated
    await kill()
    assert await retry_once(title) == "Book 7"
    await engine.dispose()
