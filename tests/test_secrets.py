"""No password leaks into logs, reprs, errors, echo output, Alembic's or PgBouncer's, or
`python -m dbkit url`."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from dbkit import SetupError, fresh_database, migrate, pgbouncer
from dbkit.checks import dispose_checked
from dbkit.database import database_url
from dbkit.databases import admin_execute
from dbkit.engine import make_engine
from dbkit.settings import Target
from tests.helpers import run_dbkit

pytestmark = pytest.mark.anyio


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
    # the configured server, with a real password (the embedded one has none of its own)
    url = database_url().set(password=PASSWORD)
    shown = run_dbkit("url", env={"DATABASE_URL": url.render_as_string(hide_password=False)})
    assert shown.returncode == 0, shown.stderr
    assert "***" in shown.stdout
    for fragment in {PASSWORD[i : i + 4] for i in range(len(PASSWORD) - 3)}:
        assert fragment not in shown.stdout + shown.stderr, fragment
