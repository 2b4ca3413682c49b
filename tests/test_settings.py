"""Where the database is: DATABASE_URL, then DB_*, then the embedded server."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import dbkit
from dbkit.errors import SetupError
from dbkit.settings import Settings, Target, configured, normalise
from tests.helpers import DB_VARIABLES

# every character that breaks a hand-built URL
NASTY = "p@ss:w/rd%#?&= x"


@pytest.fixture(autouse=True)
def no_database_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests give their settings explicitly; CI's DB_* must not leak in."""
    for name in DB_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def target(settings: Settings) -> Target:
    found = configured(settings)
    assert found is not None
    return found


def test_nothing_set_names_no_database_and_starts_nothing(tmp_path: Path) -> None:
    """Resolving the settings only reads them: starting the embedded server is
    dbkit.database's job. Its data folder is never even created."""
    pgdata = tmp_path / "pgdata"
    assert configured(Settings(_env_file=None, dbkit_pgdata=pgdata)) is None
    assert not pgdata.exists()


def test_dbkit_has_no_import_cycle() -> None:
    """dbkit's modules import each other in one direction only (top-level imports)."""
    package = Path(dbkit.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        names = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "dbkit":
                    names |= {f"dbkit.{a.name}" for a in node.names}
                else:
                    names.add(node.module)
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
        graph[f"dbkit.{path.stem}"] = {n for n in names if n.startswith("dbkit.")}
    graph.pop("dbkit.__init__")  # the package re-exports; modules never import it
    graph.pop("dbkit.__main__")  # the command line; nothing imports it

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for step in graph.get(start, ()):
            if step == goal or (step not in seen and reaches(step, goal, seen | {step})):
                return True
        return False

    cycles = sorted(m for m in graph if reaches(m, m, set()))
    assert not cycles, f"import cycle through {cycles}"


def test_database_url_wins_over_db_variables() -> None:
    s = Settings(_env_file=None, database_url="postgresql://a@h1/d1", db_host="h2")
    t = target(s)
    assert (t.url.host, t.source) == ("h1", "DATABASE_URL")


def test_db_variables_build_the_url_with_url_create() -> None:
    s = Settings(
        _env_file=None,
        db_user="app",
        db_pass=NASTY,
        db_host="db.example",
        db_port=6543,
        db_name="shop",
    )
    url = target(s).url
    assert url.drivername == "postgresql+asyncpg"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "app",
        NASTY,
        "db.example",
        6543,
        "shop",
    )
    # and it survives being written out and read back, as Alembic and subprocesses do
    again = make_url(url.render_as_string(hide_password=False))
    assert again.password == NASTY and again.host == "db.example"


def test_db_variables_are_read_from_a_dotenv_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(f"DB_HOST=from-dotenv\nDB_PASS='{NASTY}'\n")
    url = target(Settings(_env_file=env)).url
    assert (url.host, url.password) == ("from-dotenv", NASTY)


@pytest.mark.parametrize(
    "raw",
    [
        "postgres://u:pw@h:5433/db",
        "postgresql://u:pw@h:5433/db",
        "postgresql+psycopg://u:pw@h:5433/db",
        "postgresql+psycopg2://u:pw@h:5433/db",
    ],
)
def test_any_postgres_url_is_normalised_to_asyncpg(raw: str) -> None:
    url = normalise(raw)
    assert url.render_as_string(hide_password=False) == "postgresql+asyncpg://u:pw@h:5433/db"


def test_libpq_sslmode_becomes_asyncpg_ssl() -> None:
    assert dict(normalise("postgresql://u@h/db?sslmode=require").query) == {"ssl": "require"}


@pytest.mark.parametrize("raw", ["mysql://u:secret@h/db", "sqlite:///x.db"])
def test_a_url_that_is_not_postgresql_is_refused(raw: str) -> None:
    with pytest.raises(SetupError, match="not PostgreSQL") as err:
        normalise(raw)
    assert "secret" not in str(err.value)


@pytest.mark.parametrize("raw", ["not a url", "postgresql://u:secret@h:notaport/db"])
def test_a_malformed_url_is_refused_without_echoing_the_password(raw: str) -> None:
    with pytest.raises(SetupError, match="DATABASE_URL is not a URL that can be parsed") as err:
        normalise(raw)
    assert "secret" not in str(err.value)


def test_db_variables_without_db_host_are_an_error_not_a_guess() -> None:
    with pytest.raises(SetupError, match="DB_USER, DB_NAME set but DB_HOST is not"):
        target(Settings(_env_file=None, db_user="app", db_name="shop"))


def test_the_password_is_masked_wherever_a_url_is_printed() -> None:
    t = target(Settings(_env_file=None, db_user="app", db_pass=NASTY, db_host="h"))
    for shown in (str(t), repr(t.url), str(t.url), t.url.render_as_string()):
        assert NASTY not in shown and "p@ss" not in shown
    assert "***" in str(t)
    assert NASTY not in repr(Settings(_env_file=None, db_pass=NASTY, database_url=f"x{NASTY}"))
