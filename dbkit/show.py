"""pandas views of what is in the database and in the pool. Used by every notebook.

pandas reads through a synchronous connection, so with an async engine the query runs
inside `conn.run_sync(...)` (`pd.read_sql(sql, async_engine)` does not work).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


async def frame(db: AsyncEngine | AsyncConnection, sql: str, **params: Any) -> pd.DataFrame:
    """The result of `sql` as a DataFrame. An `id` column becomes its index, so a table
    shows its own ids and not pandas' 0, 1, 2 beside them."""

    def read(conn: Connection) -> pd.DataFrame:
        df = pd.read_sql_query(text(sql), conn, params=params)
        return df.set_index("id") if "id" in df.columns else df

    if isinstance(db, AsyncConnection):
        return await db.run_sync(read)
    async with db.connect() as conn:
        return await conn.run_sync(read)


async def tables(db: AsyncEngine | AsyncConnection) -> pd.DataFrame:
    """The tables in the public schema, with their columns."""
    return await frame(
        db,
        """SELECT table_name AS table, string_agg(column_name, ', ' ORDER BY ordinal_position)
                  AS columns
           FROM information_schema.columns WHERE table_schema = 'public'
           GROUP BY table_name ORDER BY table_name""",
    )


async def alembic_version(db: AsyncEngine | AsyncConnection) -> pd.DataFrame:
    """The rows of alembic_version: one per head the database is at."""
    return await frame(db, "SELECT version_num FROM alembic_version ORDER BY version_num")


def pool(engine: AsyncEngine) -> dict[str, int]:
    """How many connections the engine's pool holds, and how many are lent out."""
    p: Any = engine.pool
    return {
        "size": p.size(),
        "checked_in": p.checkedin(),
        "checked_out": p.checkedout(),
        "overflow": max(p.overflow(), 0),
    }
