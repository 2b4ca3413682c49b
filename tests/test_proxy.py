"""dbkit.proxy: the TCP proxy that notebook 13 uses to see the server's errors and to play a
network that drops everything."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from dbkit import fresh_database
from dbkit.engine import make_engine
from dbkit.proxy import Proxy, _Watcher

pytestmark = pytest.mark.anyio


async def test_forwards_over_tcp_on_localhost_only() -> None:
    url = await fresh_database("test_proxy")
    async with Proxy(url) as proxy:
        assert proxy.url.host == "127.0.0.1" and "host" not in proxy.url.query
        engine = make_engine(proxy.url, poolclass=NullPool)
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT current_database()")) == url.database
        await engine.dispose()


async def test_a_black_hole_holds_a_query_until_the_path_comes_back() -> None:
    url = await fresh_database("test_proxy")
    async with Proxy(url) as proxy:
        engine = make_engine(proxy.url, pool_pre_ping=False)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))  # the connection is open and pooled
        proxy.blackhole()

        async def ask() -> int:
            async with engine.connect() as conn:
                return await conn.scalar(text("SELECT 42"))

        query = asyncio.create_task(ask())
        done, _ = await asyncio.wait({query}, timeout=1)
        assert not done, "a query went through the black hole"
        proxy.restore()
        assert await asyncio.wait_for(query, 10) == 42
        await engine.dispose()


async def test_keeps_the_errors_the_server_sends() -> None:
    url = await fresh_database("test_proxy")
    async with Proxy(url) as proxy:
        engine = make_engine(
            proxy.url, connect_args={"server_settings": {"statement_timeout": "100"}}
        )
        with pytest.raises(DBAPIError):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(5)"))
        await engine.dispose()
    assert proxy.errors == ["ERROR 57014 canceling statement due to statement timeout"]


def test_the_watcher_reads_split_messages_and_stops_at_tls() -> None:
    errors: list[str] = []
    message = b"SERROR\0VERROR\0C57014\0Mcanceled\0\0"
    frame = b"E" + (4 + len(message)).to_bytes(4, "big") + message
    watcher = _Watcher(errors)
    for part in (b"N", frame[:3], frame[3:], b"Z\0\0\0\5I"):  # a TLS refusal, then a split E
        watcher.feed(part)
    assert errors == ["ERROR 57014 canceled"]
    encrypted = _Watcher(errors)
    encrypted.feed(b"S")
    encrypted.feed(frame)  # after 'S' the bytes are TLS: nothing is read
    assert errors == ["ERROR 57014 canceled"]
