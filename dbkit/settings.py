"""Where the database is. Explained in notebooks/00_setup.ipynb.

In this order, the first that is set wins:

1. DATABASE_URL — any postgres:// or postgresql[+driver]:// URL;
2. DB_USER, DB_PASS, DB_HOST, DB_PORT, DB_NAME — the five variables most services use;
3. otherwise the embedded PostgreSQL that ships with this course (dbkit.server).

This module only reads and checks the settings: it never starts a server. The course's
database, started when it is the embedded one, is dbkit.database.target().

Each is read from the environment or from a `.env` file in the project root; an empty
value counts as unset. The URL is always built with `URL.create` (or parsed by SQLAlchemy's
`make_url`), never an f-string, so any password works, and always for the asyncpg driver.

Connecting gives up after DB_CONNECT_TIMEOUT seconds (default 10), or libpq's
`connect_timeout=` in DATABASE_URL. libpq's URL parameters that asyncpg understands are
translated (`sslmode`, `connect_timeout`, `application_name`, `options`, ...); any other is
refused by name. A message never shows a password, nor any input that could not be parsed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from dotenv import dotenv_values
from dotenv.variables import Variable, parse_variables
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dbkit.errors import SetupError
from dbkit.urls import shown

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DRIVER = "postgresql+asyncpg"
ENV_FILE = PROJECT_ROOT / ".env"
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds; asyncpg alone would wait 60

Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0, le=3600)]


class Settings(BaseSettings):
    """The variables, as the environment (or .env) gives them."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", env_ignore_empty=True)

    database_url: SecretStr | None = None
    db_user: str | None = None
    db_pass: SecretStr | None = None
    db_host: str | None = None
    db_port: Port | None = None
    db_name: str | None = None
    db_connect_timeout: Seconds = DEFAULT_CONNECT_TIMEOUT
    dbkit_pgdata: Path | None = None  # where the embedded server keeps its data
    dbkit_namespace: str | None = None  # this learner's part of database names (databases)


# What to write instead, per variable, when pydantic refuses its value.
FIXES = {
    "db_port": "a port number from 1 to 65535 (PostgreSQL's default is 5432)",
    "db_connect_timeout": "a number of seconds above 0, e.g. 10",
}


@dataclass(frozen=True)
class Target:
    """A database to connect to, which setting chose it, and what dbkit's engines pass to
    asyncpg besides the URL (`connect_args`: the connect timeout, server settings)."""

    url: URL
    source: str
    connect_args: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __str__(self) -> str:
        return f"{shown(self.url)}  (from {self.source})"


def _check_dotenv(path: Path = ENV_FILE) -> None:
    """python-dotenv expands ${NAME} in .env values, even quoted ones; an unset NAME
    silently becomes nothing. Refuse that, without showing the value."""
    if not path.is_file():
        return
    known = set(os.environ)
    for key, value in dotenv_values(path, interpolate=False).items():
        atoms = parse_variables(value or "")
        if key.lower() in Settings.model_fields and any(
            isinstance(a, Variable) and a.name not in known and a.default is None for a in atoms
        ):
            raise SetupError(
                f"{key.upper()} in .env holds '${{...}}', which .env replaces with a variable "
                "that is not set (so with nothing). Fix: set that variable, or, if the value "
                f"really holds '${{', set {key.upper()} in the environment instead of .env."
            )
        known.add(key)


def load() -> Settings:
    """Read the variables; a malformed one is a SetupError naming it (never its value)."""
    _check_dotenv()
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0])
        fix = FIXES.get(name, "a valid value")
        message = f"{name.upper()} is not valid: {err['msg']}. Fix: set it to {fix}."
        raise SetupError(message) from None


# libpq's URL parameters (https://www.postgresql.org/docs/current/libpq-connect.html) that
# asyncpg takes as they are, under the name asyncpg gives them; SQLAlchemy hands the URL's
# query to asyncpg.connect() as keyword arguments.
AS_IS = {
    "sslmode": "ssl",
    "target_session_attrs": "target_session_attrs",
    "krbsrvname": "krbsrvname",
    "gsslib": "gsslib",
    "passfile": "passfile",
    "service": "service",
    "host": "host",  # SQLAlchemy reads ?host= itself (a unix socket directory)
    "port": "port",
}
# ... that asyncpg takes only from the environment.
FROM_ENVIRONMENT = {
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
}
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _options(value: str) -> dict[str, str]:
    """libpq's `options=-c name=value -c ...` as asyncpg server settings."""
    settings: dict[str, str] = {}
    words = value.split()
    while words:
        word = words.pop(0)
        if word == "-c" and words:
            word = words.pop(0)
        pair = word.removeprefix("-c").removeprefix("--")
        name, eq, setting = pair.partition("=")
        if not eq or not re.fullmatch(r"[a-z_][a-z0-9_.]*", name):
            raise SetupError(
                "DATABASE_URL's options= can only hold '-c name=value' settings. "
                "Fix: write each server setting as -c name=value, separated by spaces."
            )
        settings[name] = setting
    return settings


def _libpq(url: URL, name: str) -> tuple[URL, dict[str, Any]]:
    """Translate libpq's URL parameters for asyncpg: (url, connect_args)."""
    query: dict[str, str | tuple[str, ...]] = {}
    fields: dict[str, Any] = {}
    args: dict[str, Any] = {}
    server_settings: dict[str, str] = {}
    for key, value in url.query.items():
        one = value if isinstance(value, str) else value[-1]
        if not re.fullmatch(r"[a-z_]+", key):  # a key like that may be a piece of a password
            raise SetupError(
                f"{name} has a query parameter that is not a name (not shown, it may hold a "
                "password). Fix: percent-encode '?', '&' and '=' in the password."
            )
        if key in AS_IS:
            if key == "sslmode" and one not in SSLMODES:
                raise SetupError(
                    f"{name}'s sslmode is not one of {', '.join(SSLMODES)}. Fix: use one of those."
                )
            query[AS_IS[key]] = value
        elif key in ("user", "password", "dbname"):  # the same as in the URL's own places
            fields[{"user": "username", "dbname": "database"}.get(key, key)] = one
        elif key == "connect_timeout":
            try:
                args["timeout"] = float(one)
            except ValueError:
                args["timeout"] = 0.0
            if not 0 < args["timeout"] <= 3600:
                raise SetupError(
                    f"{name}'s connect_timeout is not a number of seconds above 0. "
                    "Fix: write e.g. connect_timeout=10."
                )
        elif key in ("application_name", "fallback_application_name"):
            server_settings.setdefault("application_name", one)
        elif key == "options":
            server_settings.update(_options(one))
        elif key in FROM_ENVIRONMENT:
            raise SetupError(
                f"{name} has {key}=, which asyncpg does not take in a URL. Fix: remove it and "
                f"set the environment variable {FROM_ENVIRONMENT[key]} to that file instead."
            )
        else:
            raise SetupError(
                f"{name} has the parameter {key}=, which asyncpg does not support. "
                f"Fix: remove ?{key}=... (or &{key}=...) from {name}."
            )
    if server_settings:
        args["server_settings"] = server_settings
    return url.set(query=query, **fields), args


def normalise(raw: str, name: str = "DATABASE_URL") -> URL:
    """Parse a PostgreSQL URL and switch it to the asyncpg driver."""
    return _parse(raw, name)[0]


def _parse(raw: str, name: str = "DATABASE_URL") -> tuple[URL, dict[str, Any]]:
    """(URL for asyncpg, connect_args) from a URL as a learner pastes it."""
    if raw.count("@") > 1:
        raise SetupError(
            f"{name} holds more than one '@' (not shown: it holds a password). An '@' inside "
            "the user name or password must be written %40. Fix: percent-encode the password "
            "(python3 -c 'import urllib.parse as u, getpass; print(u.quote(getpass.getpass()))')."
        )
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise SetupError(
            f"{name} is not a URL that can be parsed (not shown: it may hold a password). "
            "Fix: use the form postgresql://USER:PASSWORD@HOST:PORT/DBNAME, percent-encoding "
            "special characters in the password, or set DB_USER/DB_PASS/DB_HOST/DB_PORT/DB_NAME."
        ) from None
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise SetupError(
            f"{name} points at {url.get_backend_name()!r}, not PostgreSQL: this course "
            "needs PostgreSQL. Fix: give a postgresql:// URL, or unset it to use the "
            "embedded server."
        )
    if url.port is not None and not 1 <= url.port <= 65535:
        raise SetupError(
            f"{name}'s port is not valid: ports go from 1 to 65535. "
            "Fix: write the server's port (PostgreSQL's default is 5432)."
        )
    url, args = _libpq(url, name)
    return url.set(drivername=DRIVER), args


def configured(settings: Settings | None = None) -> Target | None:
    """The database the settings name, or None when they name none (then the course uses
    its embedded server: dbkit.database.target() starts it). Starts nothing."""
    s = settings or load()
    timeout = {"timeout": s.db_connect_timeout}
    if s.database_url is not None:
        url, args = _parse(s.database_url.get_secret_value())
        return Target(url, "DATABASE_URL", {**timeout, **args})
    given = [n for n in ("db_user", "db_pass", "db_host", "db_port", "db_name") if getattr(s, n)]
    if not given:
        return None
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
    return Target(url, "DB_* variables", timeout)
