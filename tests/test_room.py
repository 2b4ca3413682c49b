"""A room of learners on one server: nobody touches anybody else's databases.

Each test does what the other party would do: a second learner runs the same notebook at
the same moment (with a role of their own, or with the same role and another
JUPYTERHUB_USER), a test run goes on beside a learner's open kernel, six kernels re-create
one database at once, and a database somebody else made has the name we want.
The notebooks run under real nbval, in child pytest runs, as `make test` runs them."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from dbkit.database import database_url
from dbkit.databases import (
    NAMESPACE_LENGTH,
    _clean,
    admin_execute,
    fresh_database,
    namespace,
    safe_name,
)
from dbkit.errors import SetupError
from dbkit.settings import PROJECT_ROOT

pytestmark = pytest.mark.anyio
NOTEBOOK = "notebooks/05_sessions.ipynb"


def learner_env(**settings: str) -> dict[str, str]:
    """The environment of a learner's process: no namespace of the test run's own."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DBKIT_NAMESPACE", "JUPYTERHUB_USER", "PYTEST_ADDOPTS")
        and not k.startswith("PYTEST_XDIST")
    }
    return {**base, **settings}


def nbval(path: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """A child `pytest --nbval` run of one notebook (or test file), as `make test` runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=0", path],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(run: subprocess.Popen[str]) -> str:
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, out[-3000:]
    return out


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )


@pytest.fixture
async def two_roles() -> AsyncIterator[list[URL]]:
    """Two login roles with CREATEDB, as an instructor hands out, each with a password."""
    server = database_url()
    names = [f"{namespace()}_learner_{x}" for x in "ab"]
    urls = []
    for name in names:
        password = secrets.token_urlsafe(12)
        await admin_execute(
            f"DROP ROLE IF EXISTS {name}",
            f"CREATE ROLE {name} LOGIN CREATEDB PASSWORD '{password}'",
        )
        urls.append(server.set(username=name, password=password))
    yield urls
    for url in urls:  # each role drops what it made, then the roles go
        engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            owned = await conn.scalars(
                text(
                    "SELECT datname FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles"
                    " WHERE rolname = current_user)"
                )
            )
            for db in owned.all():
                await conn.execute(text(f'DROP DATABASE "{db}" WITH (FORCE)'))
        await engine.dispose()
    await admin_execute(*(f"DROP ROLE {name}" for name in names))


def as_url(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def test_two_learners_with_their_own_roles_run_the_same_notebook_at_once(
    two_roles: list[URL],
) -> None:
    runs = [nbval(NOTEBOOK, learner_env(DATABASE_URL=as_url(url))) for url in two_roles]
    for run in runs:
        assert "passed" in finish(run)
    # a learner who takes another's namespace gets one line, not the other's database
    make = (
        "import asyncio, dbkit\n"
        "try:\n    print(asyncio.run(dbkit.fresh_database('nb05')).database)\n"
        "except dbkit.SetupError as e:\n    print(e)\n"
    )
    shared = f"{namespace()}shared"
    first, second = (
        python(make, learner_env(DATABASE_URL=as_url(url), DBKIT_NAMESPACE=shared))
        for url in two_roles
    )
    assert first.stdout.strip() == safe_name("nb05", shared), first.stdout + first.stderr
    assert "already exists and belongs to role" in second.stdout, second.stdout + second.stderr
    assert "not dropping it" in second.stdout


def learners_database(name: str, env: dict[str, str]) -> URL:
    """What a learner's kernel (another process, with `env`) does: `fresh_database(name)`,
    then a table `mine` with one row in it. The database's URL."""
    made = python(
        "import asyncio, dbkit\n"
        "from dbkit.databases import admin_execute\n"
        "async def main():\n"
        f"    url = await dbkit.fresh_database({name!r})\n"
        "    await admin_execute('CREATE TABLE mine (x int)', 'INSERT INTO mine VALUES (1)',"
        " url=url)\n"
        "    print(url.database)\n"
        "asyncio.run(main())\n",
        env,
    )
    assert made.returncode == 0, made.stderr
    return database_url().set(database=made.stdout.strip())


async def test_one_role_two_hub_users_never_touch_each_others_database() -> None:
    alice, bob = f"{namespace()}alice", f"{namespace()}bob"
    alices = learners_database("nb05", learner_env(JUPYTERHUB_USER=alice))
    engine = create_async_engine(alices, poolclass=NullPool)
    async with engine.connect() as conn:  # alice's kernel, open while bob works
        # bob, same role, runs the same notebook: six kernels of his at once, and nbval
        bobs = python(
            "import asyncio, dbkit\n"
            "async def main():\n"
            "    urls = await asyncio.gather(*(dbkit.fresh_database('nb05') for _ in range(6)))\n"
            "    print(urls[0].database)\n"
            "asyncio.run(main())\n",
            learner_env(JUPYTERHUB_USER=bob),
        )
        assert bobs.returncode == 0, bobs.stderr
        assert bobs.stdout.strip() != alices.database
        finish(nbval(NOTEBOOK, learner_env(JUPYTERHUB_USER=bob)))
        assert await conn.scalar(text("SELECT count(*) FROM mine")) == 1  # alive, data kept
    await engine.dispose()


async def test_six_kernels_recreating_one_database_at_once_all_succeed() -> None:
    urls = await asyncio.gather(*(fresh_database("room_six") for _ in range(6)))
    assert len({u.database for u in urls}) == 1


async def test_a_database_somebody_else_made_is_refused_not_dropped() -> None:
    db = safe_name("room_theirs")
    await admin_execute(f"DROP DATABASE IF EXISTS {db}", f"CREATE DATABASE {db}")
    theirs = database_url().set(database=db)
    await admin_execute("CREATE TABLE work (x int)", url=theirs)
    try:
        with pytest.raises(SetupError, match="already exists and belongs to somebody else"):
            await fresh_database("room_theirs")
        engine = create_async_engine(theirs, poolclass=NullPool)
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT to_regclass('work') IS NOT NULL"))
        await engine.dispose()
    finally:
        await admin_execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


async def test_a_test_run_beside_an_open_learner_kernel_leaves_its_database_alone() -> None:
    learner = f"{namespace()}learner"  # a made-up learner: never a real one's databases
    mine = learners_database("nb05_student", learner_env(JUPYTERHUB_USER=learner))  # the copy's
    engine = create_async_engine(mine, poolclass=NullPool)
    async with engine.connect() as conn:
        # the learner runs `make test` while the kernel is open: the learner copies run too
        out = finish(
            nbval(
                "tests/test_student.py::test_learner_copy_fails_at_its_exercises_and_only_there"
                "[05_sessions]",
                learner_env(JUPYTERHUB_USER=learner),
            )
        )
        assert "1 passed" in out
        assert await conn.scalar(text("SELECT to_regclass('mine') IS NOT NULL"))
    await engine.dispose()


ANY_SERVER = "postgresql://postgres:pw@db.example/course"  # resolving never connects


@pytest.mark.parametrize(
    ("settings", "want"),
    [
        ({"DBKIT_NAMESPACE": "ann", "JUPYTERHUB_USER": "bob", "DATABASE_URL": ANY_SERVER}, "ann"),
        ({"JUPYTERHUB_USER": "bob", "DATABASE_URL": ANY_SERVER}, "bob"),
        ({"DATABASE_URL": "postgresql://carol:pw@db.example/course"}, "carol"),
        ({"DATABASE_URL": ANY_SERVER, "LOGNAME": "dave"}, "dave"),
    ],
)
def test_the_namespace_comes_from_the_first_setting_that_is_set(
    settings: dict[str, str], want: str
) -> None:
    env = {k: v for k, v in learner_env().items() if not k.startswith("DB_")}
    done = python("from dbkit.databases import namespace; print(namespace())", {**env, **settings})
    assert done.stdout.strip() == want, done.stderr


def test_names_are_distinct_and_fit_postgresql_for_any_user_name() -> None:
    long = "a-very-long-name.of.somebody@university.example.org"
    users = ["ann-marie", "annmarie", "Ann.Marie", long, long + "x"]
    spaces = [_clean(user, NAMESPACE_LENGTH) for user in users]
    assert len(set(spaces)) == len(users)
    assert all(len(s) <= NAMESPACE_LENGTH and s.isalnum() and s == s.lower() for s in spaces)
    names = {safe_name("nb10_exercise_never" * 3, s) for s in spaces}
    assert len(names) == len(users) and all(len(n) <= 63 for n in names)
