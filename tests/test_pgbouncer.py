"""PgBouncer's transaction pooling breaks cached prepared statements, and the course's fix
works through a real PgBouncer. Shown in notebook 10."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from dbkit import fresh_database, pgbouncer
from dbkit.checks import dispose_checked
from dbkit.engine import make_engine

pytestmark = pytest.mark.anyio


needs_pgbouncer = pytest.mark.skipif(not pgbouncer.available(), reason=pgbouncer.INSTALL)


async def prepared_statement_scenario(engine: AsyncEngine, other: AsyncEngine) -> None:
    """A pooled connection runs a query; another client's transaction then holds the
    server connection that query was prepared on; the pooled connection runs it again."""
    query = text("SELECT count(*) FROM pg_class WHERE relname = :name")
    async with engine.connect() as conn:
        await conn.scalar(query, {"name": "x"})
    async with other.begin() as busy:
        await busy.execute(text("SELECT 1"))
        async with engine.connect() as conn:
            await conn.scalar(query, {"name": "x"})


@needs_pgbouncer
async def test_pgbouncer_transaction_pooling_breaks_cached_statements_and_the_fix_works() -> None:
    url = await fresh_database("test_rel_bouncer")
    with pgbouncer.start(url, pool_size=2) as bouncer:
        other = make_engine(bouncer.url, connect_args={"statement_cache_size": 0})
        default = make_engine(bouncer.url)
        with pytest.raises(DBAPIError, match=r"prepared statement .* does not exist"):
            await prepared_statement_scenario(default, other)
        fixed = make_engine(bouncer.url, connect_args={"statement_cache_size": 0})
        for _ in range(3):
            await prepared_statement_scenario(fixed, other)
        await dispose_checked(other, default, fixed)
    assert bouncer.process.poll() is not None and not bouncer.workdir.exists()
