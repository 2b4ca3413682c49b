"""A fresh, isolated database per notebook or test. Explained in notebooks/00_setup.ipynb.

`await fresh_database("nb03")` drops and re-creates a database of that name on the
configured server and returns its URL. Each notebook uses its own name, so notebooks run
in any order, twice in a row, and side by side, and never touch the project's database.
`scratch_dir(name)` does the same for a folder of files (notebooks 01 and 02).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from dbkit.errors import SetupError, explain
from dbkit.settings import PROJECT_ROOT, connect_args, database_url

PREFIX = "dbkit_"  # every database this module makes starts with it, so it drops no other


def safe_name(name: str) -> str:
    """A database name PostgreSQL takes unquoted: dbkit_ + lowercase letters, digits, _."""
    cleaned = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    if not cleaned:
        raise ValueError(f"{name!r} has no letters or digits to name a database with")
    return (PREFIX + cleaned)[:63]


async def admin_execute(*statements: str, url: URL | None = None) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE need that) on the
    server's own database; connection failures become a SetupError."""
    server = url or database_url()
    engine = create_async_engine(
        server, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args=connect_args()
    )
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    except Exception as exc:
        if (problem := explain(exc, server)) is not None:
            raise problem from None
        raise
    finally:
        await engine.dispose()


async def fresh_database(name: str, *, url: URL | None = None) -> URL:
    """Drop (ending its sessions) and create database `dbkit_<name>`; return its URL."""
    db = safe_name(name)
    server = url or database_url()
    if server.database == db:
        raise SetupError(f"{db!r} is the configured database itself: pick another name.")
    await admin_execute(
        f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", f"CREATE DATABASE {db}", url=server
    )
    return server.set(database=db)


async def drop_database(url: URL) -> None:
    """Drop a database made by fresh_database, ending its sessions."""
    db = url.database or ""
    if not db.startswith(PREFIX):
        raise ValueError(f"{db!r} was not made by fresh_database; not dropping it")
    await admin_execute(
        f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", url=url.set(database=database_url().database)
    )


def scratch_dir(name: str) -> Path:
    """An empty folder of its own, inside this project (.dbkit/scratch/<name>), so that
    neither another user nor another clone of the course shares it; emptied first."""
    path = PROJECT_ROOT / ".dbkit" / "scratch" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
