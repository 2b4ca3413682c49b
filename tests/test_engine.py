"""dbkit's engine and session helpers build exactly the seed's objects and the recommended
ones; fresh_database gives every caller its own database."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import sessionmaker

from dbkit import drop_database, fresh_database, migrate
from dbkit.databases import namespace, safe_name
from dbkit.engine import (
    make_engine,
    make_session_factory,
    seed_scoped_session,
    seed_session_factory,
    session_scope,
)
from dbkit.models import Author
from dbkit.show import pool

pytestmark = pytest.mark.anyio


async def test_seed_objects_are_the_seed_objects() -> None:
    engine = make_engine(await fresh_database("test_seed"))
    assert engine.url.drivername == "postgresql+asyncpg"
    assert engine.pool._pre_ping is True  # type: ignore[attr-defined]
    factory = seed_session_factory(engine)
    assert isinstance(factory, sessionmaker) and issubclass(factory.class_, AsyncSession)
    assert factory.kw["expire_on_commit"] is False
    Session = seed_scoped_session(factory)

    async def one_task() -> int:
        first, second = Session(), Session()
        assert first is second  # same task, same session
        await Session.execute(text("SELECT 1"))
        await Session.remove()
        return id(first)

    ids = await asyncio.gather(*(one_task() for _ in range(3)))
    assert len(set(ids)) == 3  # each task of a gather, its own session
    assert pool(engine)["checked_out"] == 0
    await engine.dispose()


async def test_recommended_session_scope_commits_and_rolls_back() -> None:
    url = await fresh_database("test_scope")
    await migrate.upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    assert isinstance(factory, async_sessionmaker)
    async with session_scope(factory) as session:
        session.add(Author(name="Octavia E. Butler"))
    with pytest.raises(ZeroDivisionError):
        async with session_scope(factory) as session:
            session.add(Author(name="never written"))
            await session.flush()
            1 / 0  # noqa: B018
    async with session_scope(factory) as session:
        names = (await session.scalars(select(Author.name))).all()
    assert names == ["Octavia E. Butler"]
    assert pool(engine)["checked_out"] == 0
    await engine.dispose()


async def test_fresh_database_is_fresh_and_isolated() -> None:
    url = await fresh_database("test_fresh")
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE scratch (x int)"))
    await engine.dispose()
    again = await fresh_database("test_fresh")  # drops the old one, even with it in use
    assert again == url
    engine = make_engine(again)
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT to_regclass('scratch')")) is None
        assert await conn.scalar(text("SELECT current_database()")) == safe_name("test_fresh")
    await engine.dispose()
    await drop_database(again)


def test_safe_names() -> None:
    assert safe_name("nb03", "ann") == "dbkit_ann_nb03"
    assert safe_name("My Notebook-03!", "ann") == "dbkit_ann_my_notebook_03"
    assert len(safe_name("x" * 100, "ann")) == 63
    assert safe_name("nb03") == f"dbkit_{namespace()}_nb03"  # this run's own namespace
    with pytest.raises(ValueError):
        safe_name("!!!")


async def test_drop_database_drops_only_its_own() -> None:
    url = await fresh_database("test_drop")
    with pytest.raises(ValueError, match="not made by fresh_database"):
        await drop_database(url.set(database="postgres"))
