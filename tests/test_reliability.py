"""Reliability: the app recovers from dead connections and a server restart, an exhausted
pool fails fast, leaks are found, retries retry only what is safe, PgBouncer's transaction
pooling is survived, concurrent migrations are safe even when they are slow, and no
password leaks into logs, reprs, errors or echo output.

Shown step by step in notebooks 09 and 10. tests/test_migrations.py holds the other
migration checks: concurrent `alembic upgrade head` runs of the project as it is, and data
surviving the data-carrying revision.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.pool import NullPool

from dbkit import SetupError, fresh_database, migrate, pgbouncer, server
from dbkit.checks import LeakError, assert_no_leaks, dispose_checked
from dbkit.databases import admin_execute
from dbkit.engine import make_engine, make_session_factory, seed_scoped_session
from dbkit.errors import explain
from dbkit.models import Author, Tag
from dbkit.retry import in_transaction
from dbkit.settings import PROJECT_ROOT, Target, database_url
from tests.helpers import run_dbkit

pytestmark = pytest.mark.anyio


def app_engine(url: URL, name: str, **options: Any) -> AsyncEngine:
    """An engine whose connections carry `name` as application_name, so that a test can
    find (and end) exactly its own server processes."""
    return make_engine(url, connect_args={"server_settings": {"application_name": name}}, **options)


async def terminate(url: URL, name: str) -> int:
    """End every backend of `url`'s database opened with application_name `name`."""
    admin = make_engine(url, poolclass=NullPool)
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
    with pytest.raises(LeakError, match="dbkit_test_rel_leak: 1 connection"):
        assert_no_leaks(engine)
    with pytest.raises(LeakError):  # and dispose_checked reports it, then still disposes
        await dispose_checked(engine)
    for session in list(Session.registry.registry.values()):
        await session.close()


async def test_retry_reruns_a_transaction_whose_connection_died_before_commit() -> None:
    url = await fresh_database("test_rel_retry")
    await migrate.upgrade(url)
    engine = app_engine(url, "test_rel_retry")
    factory = make_session_factory(engine)
    attempts: list[int] = []

    async def work(session: AsyncSession) -> str:
        attempts.append(1)
        session.add(Author(name="Mary Shelley"))
        await session.flush()
        if len(attempts) == 1:
            await terminate(url, "test_rel_retry")
        await session.execute(text("SELECT 1"))
        return "done"

    assert await in_transaction(factory, work) == "done"
    assert len(attempts) == 2
    async with factory() as session:
        assert await session.scalar(select(func.count()).select_from(Author)) == 1
    await dispose_checked(engine)


async def test_retry_never_reruns_data_errors_or_a_failed_commit() -> None:
    url = await fresh_database("test_rel_noretry")
    await migrate.upgrade(url)
    engine = app_engine(url, "test_rel_noretry")
    factory = make_session_factory(engine)
    attempts: list[int] = []

    async def duplicate(session: AsyncSession) -> None:
        attempts.append(1)
        session.add_all([Tag(name="gothic"), Tag(name="gothic")])
        await session.flush()

    with pytest.raises(IntegrityError):
        await in_transaction(factory, duplicate)
    assert len(attempts) == 1

    attempts.clear()

    async def dies_at_commit(session: AsyncSession) -> None:
        attempts.append(1)
        session.add(Author(name="Bram Stoker"))
        await session.flush()
        await terminate(url, "test_rel_noretry")  # so the COMMIT is what fails

    with pytest.raises(DBAPIError) as failed:
        await in_transaction(factory, dies_at_commit)
    assert failed.value.connection_invalidated and len(attempts) == 1
    await dispose_checked(engine)


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


START_TOGETHER = (
    "import sys\n"
    "import alembic.command, asyncpg, dbkit.models, sqlalchemy.ext.asyncio\n"
    "from alembic.config import main\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "main(argv=['upgrade', 'head'], prog='alembic')\n"
)


def slow_copy_of_the_project_migrations(parent: Path) -> Path:
    """The project's alembic.ini and migrations/, unchanged except that each run pauses
    for a second before it commits, as a real migration (an index build) takes time: so
    every concurrent run overlaps the first one, whatever the machine's load."""
    shutil.copy(PROJECT_ROOT / "alembic.ini", parent)
    shutil.copytree(
        PROJECT_ROOT / "migrations",
        parent / "migrations",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    env_py = parent / "migrations" / "env.py"
    head, tail = env_py.read_text().split("def do_run_migrations", 1)
    run = "        context.run_migrations()\n"
    assert run in tail
    pause = '        connection.execute(text("SELECT pg_sleep(1)"))\n'
    env_py.write_text(head + "def do_run_migrations" + tail.replace(run, run + pause, 1))
    return parent


def upgrade_together(url: URL, cwd: Path, processes: int) -> list[tuple[int, str]]:
    """`alembic upgrade head` in `processes` processes released at the same moment, after
    every one has imported everything, as replicas of one deployment start: (exit code,
    stderr) of each."""
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
    assert [p.stdout.readline().strip() for p in started] == ["ready"] * processes  # type: ignore[union-attr]
    for p in started:
        p.stdin.write("go\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
    errors = [p.communicate(timeout=120)[1] for p in started]
    return [(p.returncode, e) for p, e in zip(started, errors, strict=True)]


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


PASSWORD = "Zq9-sw0rdfish:@/%#?&= x"  # distinctive, and full of URL-special characters


@pytest.fixture
async def role_url() -> Any:
    """The URL of a fresh database for a new role with PASSWORD (dropped afterwards)."""
    role = f"dbkit_pw_{os.getpid()}"
    url = await fresh_database("test_rel_password")
    await admin_execute(
        f"DROP ROLE IF EXISTS {role}",
        f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'",
        f"GRANT ALL ON DATABASE {url.database} TO {role}",
        url=url,
    )
    yield url.set(username=role, password=PASSWORD)
    await admin_execute(f"DROP DATABASE {url.database} WITH (FORCE)", f"DROP ROLE {role}")


async def test_passwords_never_appear_in_logs_reprs_errors_or_echo(
    role_url: URL, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level: pool, engine, dialect
    seen: list[str] = []

    engine = make_engine(role_url, echo="debug")
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT current_user")) == role_url.username
        with pytest.raises(DBAPIError) as failed:
            await conn.execute(text("SELECT * FROM no_such_table"))
        seen.append(str(failed.value))
    seen += [repr(engine), str(engine.url), repr(engine.url), str(engine.pool.status())]
    seen += [str(Target(role_url, "a test")), repr(Target(role_url, "a test"))]
    await dispose_checked(engine)

    wrong = role_url.set(password=PASSWORD + "-wrong")
    with pytest.raises(SetupError) as refused:
        await admin_execute("SELECT 1", url=wrong)
    assert "refused the password" in str(refused.value)
    seen.append(str(refused.value))
    with pytest.raises(SetupError) as missing:
        await fresh_database("x", url=role_url.set(database="dbkit_no_such_db"))
    seen.append(str(missing.value))
    with pytest.raises(SetupError, match="may not create databases") as denied:
        await fresh_database("test_rel_denied", url=role_url)
    seen.append(str(denied.value))
    with pytest.raises(SetupError) as nowhere:
        await admin_execute("SELECT 1", url=role_url.set(host="127.0.0.1", port=1, query={}))
    seen.append(str(nowhere.value))

    seen.append(migrate.alembic("current", url=role_url))
    shown = run_dbkit("url", env={"DATABASE_URL": role_url.render_as_string(hide_password=False)})
    assert shown.returncode == 0 and role_url.username in shown.stdout
    seen += [shown.stdout, shown.stderr]

    if pgbouncer.available():
        with pgbouncer.start(role_url) as bouncer:
            through = make_engine(bouncer.url, connect_args={"statement_cache_size": 0})
            async with through.connect() as conn:
                assert await conn.scalar(text("SELECT current_user")) == role_url.username
            await dispose_checked(through)
            seen += [repr(bouncer), str(bouncer.url), bouncer.log()]

    captured = capsys.readouterr()
    seen += [captured.out, captured.err, caplog.text]
    seen += [str(r.args) for r in caplog.records]  # the arguments of every log call too
    assert "SELECT current_user" in captured.out  # echo did write, and was captured
    assert len(caplog.records) > 10
    rendered = role_url.render_as_string(hide_password=False)
    encoded = rendered.split("://", 1)[1].split("@")[0].split(":", 1)[1]  # as in a URL
    assert encoded != PASSWORD
    for text_ in seen:
        assert PASSWORD not in text_ and encoded not in text_, text_


def test_the_configured_url_is_masked_by_python_m_dbkit_url() -> None:
    url = database_url()
    shown = run_dbkit("url", env={"DATABASE_URL": url.render_as_string(hide_password=False)})
    assert shown.returncode == 0
    if url.password:
        assert url.password not in shown.stdout and "***" in shown.stdout
