"""Where the database is. Explained in notebooks/00_setup.ipynb.

In this order, the first that is set wins:

1. DATABASE_URL — any postgres:// or postgresql[+driver]:// URL;
2. DB_USER, DB_PASS, DB_HOST, DB_PORT, DB_NAME — the five variables most services use;
3. otherwise the embedded PostgreSQL that ships with this course (dbkit.server).

Each is read from the environment or from a `.env` file in the project root. The URL is
always built with `URL.create`, never an f-string, so any password works, and always
for the asyncpg driver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dbkit.errors import SetupError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DRIVER = "postgresql+asyncpg"


class Settings(BaseSettings):
    """The variables, as the environment (or .env) gives them."""

    model_config = SettingsConfigDict(env_file=PROJECT_ROOT / ".env", extra="ignore")

    database_url: SecretStr | None = None
    db_user: str | None = None
    db_pass: SecretStr | None = None
    db_host: str | None = None
    db_port: int | None = None
    db_name: str | None = None
    dbkit_pgdata: Path | None = None  # where the embedded server keeps its data
    dbkit_namespace: str | None = None  # this learner's part of database names (databases)


@dataclass(frozen=True)
class Target:
    """A database to connect to, and which setting chose it."""

    url: URL
    source: str

    def __str__(self) -> str:
        shown = unquote(self.url.render_as_string(hide_password=True))  # ?host=/a/b, not %2Fa%2Fb
        return f"{shown}  (from {self.source})"


def load() -> Settings:
    """Read the variables; a malformed one is a SetupError naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        names = ", ".join(str(err["loc"][0]).upper() for err in exc.errors())
        raise SetupError(
            f"{names} is not valid: {exc.errors()[0]['msg']}. Fix its value."
        ) from None


def normalise(raw: str, name: str = "DATABASE_URL") -> URL:
    """Parse a PostgreSQL URL and switch it to the asyncpg driver."""
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        shown = re.sub(r"://.*@", "://***@", raw)  # never echo what may be a password
        raise SetupError(
            f"{name} is not a URL that can be parsed: {shown!r}. Fix: use the form "
            "postgresql://USER:PASSWORD@HOST:PORT/DBNAME, percent-encoding special "
            "characters in the password, or set DB_USER/DB_PASS/DB_HOST/DB_PORT/DB_NAME."
        ) from None
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise SetupError(
            f"{name} points at {url.get_backend_name()!r}, not PostgreSQL: this course "
            "needs PostgreSQL. Fix: give a postgresql:// URL, or unset it to use the "
            "embedded server."
        )
    query = dict(url.query)
    if "sslmode" in query:  # libpq's name; asyncpg calls it ssl
        query["ssl"] = query.pop("sslmode")
    return url.set(drivername=DRIVER, query=query)


def target(settings: Settings | None = None) -> Target:
    """The configured database. Starts the embedded server when nothing else is set."""
    s = settings or load()
    if s.database_url is not None:
        return Target(normalise(s.database_url.get_secret_value()), "DATABASE_URL")
    given = [n for n in ("db_user", "db_pass", "db_host", "db_port", "db_name") if getattr(s, n)]
    if given:
        if s.db_host is None:
            raise SetupError(
                f"{', '.join(n.upper() for n in given)} set but DB_HOST is not. "
                "Fix: set DB_HOST too, or unset them all to use the embedded server."
            )
        url = URL.create(
            DRIVER,
            username=s.db_user or "postgres",
            password=s.db_pass.get_secret_value() if s.db_pass else None,
            host=s.db_host,
            port=s.db_port or 5432,
            database=s.db_name or "postgres",
        )
        return Target(url, "DB_* variables")
    from dbkit import server  # only needed, and only imported, for the embedded server

    return Target(server.start(s.dbkit_pgdata).url, "the embedded server (nothing else set)")


def database_url() -> URL:
    """The URL of the configured database (password inside; print it and it is masked)."""
    return target().url
