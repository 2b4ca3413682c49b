"""What the notebooks and tests do to stage a failure on purpose, written once.

Not application code: each function here plays a part that production plays by itself
(an administrator ending connections, replicas starting at the same moment, a developer
changing a migration). The notebooks show the code with `inspect.getsource` where it is
first used: terminate in 09, close_leaked in 06, copy_migrations in 08, upgrade_together
in 10.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, async_scoped_session, create_async_engine
from sqlalchemy.pool import NullPool

from dbkit.engine import make_engine
from dbkit.settings import PROJECT_ROOT


def app_engine(url: URL, name: str, **options: Any) -> AsyncEngine:
    """An engine whose connections carry `application_name` = `name`, which PostgreSQL
    shows in pg_stat_activity: how an administrator finds one app's connections."""
    return make_engine(url, connect_args={"server_settings": {"application_name": name}}, **options)


async def terminate(url: URL, name: str) -> int:
    """End every server process of `url`'s database opened with application_name `name`,
    as an administrator, a restart or a failover would. pg_terminate_backend(pid, 5000)
    waits (up to 5 s) until each is really gone. Returns how many it ended."""
    admin = create_async_engine(url, poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            ended = await conn.scalars(
                text(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND application_name = :name"
                ),
                {"name": name},
            )
            return sum(ended.all())
    finally:
        await admin.dispose()


async def close_leaked(registry: async_scoped_session[Any]) -> int:
    """Close every session a scoped registry still keeps, and forget them: what nobody
    does for a leak in production. It reads the registry's internal {task: session}
    dictionary: fine for teaching, not for application code."""
    leaked = registry.registry.registry
    for session in list(leaked.values()):
        await session.close()
    count = len(leaked)
    leaked.clear()
    return count


def copy_migrations(dest: Path, changes: Mapping[str, str] | None = None) -> Path:
    """The project's alembic.ini and migrations/ copied into `dest`, with `changes`
    ({text in migrations/env.py: its replacement}) made to env.py; each text must be
    there exactly once, so a change to env.py cannot silently make a demo a no-op."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "alembic.ini", dest)
    shutil.copytree(
        PROJECT_ROOT / "migrations", dest / "migrations", ignore=shutil.ignore_patterns("__*")
    )
    env_py = dest / "migrations" / "env.py"
    source = env_py.read_text()
    for old, new in (changes or {}).items():
        if source.count(old) != 1:
            raise ValueError(f"env.py has {source.count(old)} copies of {old!r}, not one")
        source = source.replace(old, new)
    env_py.write_text(source)
    return dest


START_TOGETHER = (
    "import sys\n"
    "import alembic.command, asyncpg, dbkit.models, sqlalchemy.ext.asyncio\n"
    "from alembic.config import main\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "main(argv=['upgrade', 'head'], prog='alembic')\n"
)


def upgrade_together(url: URL, cwd: Path, processes: int = 3) -> list[tuple[int, str]]:
    """`alembic upgrade head` in `processes` processes released at the same moment, once
    every one has imported everything, as the replicas of one deployment start. Returns
    (exit code, what it printed on stderr) of each."""
    env = {**os.environ, "DATABASE_URL": url.render_as_string(hide_password=False)}
    started = [
        subprocess.Popen(
            [sys.executable, "-c", START_TOGETHER],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    ready = [p.stdout.readline().strip() for p in started]
    if ready != ["ready"] * processes:
        raise RuntimeError(f"not every process got ready: {ready}")
    for p in started:
        p.stdin.write("go\n")
        p.stdin.flush()
    errors = [p.communicate(timeout=120)[1] for p in started]
    return [(p.returncode, e) for p, e in zip(started, errors, strict=True)]
