"""The project's migrations: one head, up and down and up again, the models match them,
data survives the data migration (with exactly the loss its docstring admits), and
concurrent `alembic upgrade head` runs are safe."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from dbkit import fresh_database, migrate
from dbkit.demo import copy_migrations, upgrade_together
from dbkit.models import Base
from dbkit.settings import PROJECT_ROOT

pytestmark = pytest.mark.anyio


async def query(url: URL, sql: str) -> list[tuple]:
    """Run the statements in `sql` (separated by ';') and return the last one's rows."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            for statement in filter(str.strip, sql.split(";")):
                result = await conn.execute(text(statement))
            return [tuple(row) for row in result.all()] if result.returns_rows else []
    finally:
        await engine.dispose()


def test_one_head() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config(URL.create("postgresql")))
    assert script.get_heads() == [migrate.head()] == ["0003"]


async def test_upgrade_downgrade_upgrade() -> None:
    url = await fresh_database("test_updown")
    await migrate.upgrade(url, "head")
    assert await query(url, "SELECT version_num FROM alembic_version") == [("0003",)]
    await migrate.downgrade(url, "base")
    tables = await query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables == [("alembic_version",)]
    await migrate.upgrade(url, "head")
    assert await query(url, "SELECT version_num FROM alembic_version") == [("0003",)]


async def test_models_match_migrations() -> None:
    url = await fresh_database("test_autogen")
    await migrate.upgrade(url, "head")
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
        )
    await engine.dispose()
    assert diff == []


async def test_fines_survive_the_data_migration_with_the_documented_loss() -> None:
    url = await fresh_database("test_fines")
    await migrate.upgrade(url, "0001")
    await query(
        url,
        """
        INSERT INTO authors (id, name) VALUES (1, 'Ursula K. Le Guin');
        INSERT INTO books (id, title, author_id) VALUES (1, 'A', 1), (2, 'B', 1), (3, 'C', 1),
                                                        (4, 'D', 1);
        INSERT INTO members (id, name, email) VALUES (1, 'Ada', 'ada@example.org');
        INSERT INTO loans (id, book_id, member_id, fine)
            VALUES (1, 1, 1, 2.5), (2, 2, 1, 0.125), (3, 3, 1, NULL), (4, 4, 1, 0);""",
    )

    await migrate.upgrade(url, "0002")
    after = await query(url, "SELECT id, fine_cents FROM loans ORDER BY id")
    # exact for whole cents; 0.125 rounds half away from zero; NULL becomes 0 (the loss)
    assert after == [(1, 250), (2, 13), (3, 0), (4, 0)]

    await migrate.downgrade(url, "0001")
    back = await query(url, "SELECT id, fine FROM loans ORDER BY id")
    assert back == [(1, 2.5), (2, 0.13), (3, 0.0), (4, 0.0)]

    await migrate.upgrade(url, "head")  # and up again: nothing more changes
    assert await query(url, "SELECT id, fine_cents FROM loans ORDER BY id") == after
    assert await query(url, "SELECT count(*) FROM members") == [(1,)]


def slow_copy_of_the_project_migrations(parent: Path) -> Path:
    """The project's alembic.ini and migrations/, unchanged except that each run pauses
    for a second before it commits, as a real migration (an index build) takes time: so
    every concurrent run overlaps the first one, whatever the machine's load."""
    run = '{"key": MIGRATION_LOCK_KEY})\n        context.run_migrations()\n'  # online only
    pause = '        connection.execute(text("SELECT pg_sleep(1)"))\n'
    return copy_migrations(parent, {run: run + pause})


async def test_four_slow_concurrent_upgrades_all_succeed_and_apply_each_revision_once(
    tmp_path: Path,
) -> None:
    url = await fresh_database("test_rel_slow_concurrent")
    cwd = slow_copy_of_the_project_migrations(tmp_path)
    results = await asyncio.to_thread(upgrade_together, url, cwd, 4)
    for returncode, stderr in results:
        assert returncode == 0, stderr
    applied = re.findall(r"Running upgrade \S* ?-> (\w+)", "".join(e for _, e in results))
    assert sorted(applied) == ["0001", "0002", "0003"]


def test_offline_sql_needs_no_database() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head", "--sql"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
    )
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE loans" in result.stdout
    assert "UPDATE alembic_version SET version_num='0003'" in result.stdout
