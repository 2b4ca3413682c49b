"""Recovery: the app survives dead connections and a server restart, an exhausted pool
fails fast, and leaks are found. Shown step by step in notebook 09."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dbkit import SetupError, fresh_database, server
from dbkit.checks import LeakError, assert_no_leaks, dispose_checked
from dbkit.databases import safe_name
from dbkit.demo import app_engine, terminate
from dbkit.engine import make_engine, make_session_factory, seed_scoped_session
from dbkit.errors import explain

pytestmark = pytest.mark.anyio


async def fill_pool(engine: AsyncEngine, n: int) -> set[int]:
    """Check out n connections at once (so the pool holds n), return their server pids."""

    async def one() -> int:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(0.05)"))
            return await conn.scalar(text("SELECT pg_backend_pid()"))

    return set(await asyncio.gather(*(one() for _ in range(n))))


@pytest.fixture
def private_pgdata() -> Iterator[Path]:
    """A private embedded server's data dir, stopped and removed afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="dbkit-reliability-"))
    parent.chmod(0o755)  # as root the server runs as user dbkit, which must get in
    yield parent / "pgdata"
    server.stop(parent / "pgdata")
    shutil.rmtree(parent, ignore_errors=True)


async def test_pre_ping_recovers_after_every_pooled_connection_is_terminated() -> None:
    url = await fresh_database("test_rel_ping")
    engine = app_engine(url, "test_rel_ping", pool_size=3)
    before = await fill_pool(engine, 3)
    assert len(before) == 3
    assert await terminate(url, "test_rel_ping") == 3
    after = await fill_pool(engine, 3)  # three requests at once: none may fail
    assert len(after) == 3 and not after & before  # every connection was replaced
    await dispose_checked(engine)


async def test_the_same_engine_recovers_after_a_server_restart(private_pgdata: Path) -> None:
    running = server.start(private_pgdata)
    engine = make_engine(running.url, pool_size=2, connect_args={"timeout": 5})
    await fill_pool(engine, 2)

    server.stop(private_pgdata)
    newcomer = make_engine(running.url, connect_args={"timeout": 5})
    with pytest.raises(OSError) as down:  # while it is down: a fast, clear failure
        async with newcomer.connect():
            pass
    problem = explain(down.value, running.url)
    assert isinstance(problem, SetupError) and "Nothing is listening" in str(problem)

    server.start(private_pgdata)
    # the pool still holds two connections from before the restart: no request may fail
    assert len(await fill_pool(engine, 2)) == 2
    await dispose_checked(engine, newcomer)


async def test_an_exhausted_pool_raises_timeout_error_within_pool_timeout() -> None:
    url = await fresh_database("test_rel_exhaust")
    engine = make_engine(url, pool_size=1, max_overflow=1, pool_timeout=0.5)
    held = [await engine.connect() for _ in range(2)]
    started = time.perf_counter()
    try:
        async with asyncio.timeout(10):  # guard: never let this test hang
            with pytest.raises(sqlalchemy.exc.TimeoutError, match="QueuePool limit"):
                await engine.connect()
    finally:
        waited = time.perf_counter() - started
        for conn in held:
            await conn.close()
    assert 0.4 <= waited < 3, waited
    await dispose_checked(engine)


async def test_a_leaked_scoped_session_is_detected() -> None:
    url = await fresh_database("test_rel_leak")
    engine = make_engine(url)
    Session = seed_scoped_session(make_session_factory(engine))

    async def handler(remove: bool) -> None:
        await Session.execute(text("SELECT 1"))
        if remove:
            await Session.remove()

    await asyncio.gather(handler(remove=True), handler(remove=True))
    assert_no_leaks(engine)  # every task removed its session: nothing to report

    await asyncio.gather(handler(remove=False), handler(remove=True))
    with pytest.raises(LeakError, match=f"{safe_name('test_rel_leak')}: 1 connection"):
        assert_no_leaks(engine)
    with pytest.raises(LeakError):  # and dispose_checked reports it, then still disposes
        await dispose_checked(engine)
    for session in list(Session.registry.registry.values()):
        await session.close()
