"""A fresh, isolated database per notebook or test. Explained in notebooks/00_setup.ipynb.

`await fresh_database("nb03")` drops and re-creates this learner's database of that name
on the configured server and returns its URL. Each notebook uses its own name, so
notebooks run in any order, twice in a row, and side by side, and never touch the
project's database. `scratch_dir(name)` does the same for a folder of files.

On a server shared by a room, database names are global: every name carries the
learner's namespace, `dbkit_<namespace>_<name>` (`dbkit_alice_nb03`). The namespace is, the
first that is set: DBKIT_NAMESPACE; JUPYTERHUB_USER (JupyterHub sets it in each learner's
server, where everybody may be the same OS user); the role we log in as, unless it is
`postgres`; the OS user. A database is dropped only when it carries this namespace's mark
and belongs to the role we log in as: a database of somebody else is refused, not wiped.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import shutil
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from dbkit.database import connect_args, database_url
from dbkit.errors import SetupError, explain
from dbkit.settings import PROJECT_ROOT, configured, load

PREFIX = "dbkit_"  # every database this module makes starts with it, so it drops no other
NAMESPACE_LENGTH = 20


def _clean(raw: str, length: int) -> str:
    """Lowercase letters and digits only; a short hash keeps apart names that differ only
    in what was removed ('ann-marie', 'annmarie') or in what is cut off."""
    cleaned = re.sub(r"[^a-z0-9]+", "", raw.lower())
    if cleaned == raw and len(cleaned) <= length:
        return cleaned
    digest = hashlib.sha256(raw.encode()).hexdigest()[:6]
    return cleaned[: length - 6] + digest


def namespace(url: URL | None = None) -> str:
    """This learner's namespace (see the module's docstring), at most 20 of [a-z0-9]."""
    settings = load()
    if url is None:  # the embedded server's role is always postgres: never start it for this
        found = configured(settings)
        role = found.url.username if found else None
    else:
        role = url.username
    raw = (
        settings.dbkit_namespace
        or os.environ.get("JUPYTERHUB_USER")
        or (role if role not in (None, "", "postgres") else None)
        or _os_user()
    )
    return _clean(raw, NAMESPACE_LENGTH)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no name
        return f"uid{os.geteuid()}"


def safe_name(name: str, ns: str | None = None) -> str:
    """`dbkit_<namespace>_<name>`, a database name PostgreSQL takes unquoted, at most 63
    characters (a longer one is cut and given a hash)."""
    cleaned = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    if not cleaned:
        raise ValueError(f"{name!r} has no letters or digits to name a database with")
    full = f"{PREFIX}{ns if ns is not None else namespace()}_{cleaned}"
    if len(full) <= 63:
        return full
    return full[:56] + "_" + hashlib.sha256(full.encode()).hexdigest()[:6]


def mark(ns: str) -> str:
    """The comment fresh_database puts on each database it makes."""
    return f"made by dbkit for {ns}"


async def admin_execute(*statements: str, url: URL | None = None) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE need that) on the
    server's own database; connection failures become a SetupError."""
    async with _admin(url or database_url()) as conn:
        for statement in statements:
            await conn.execute(text(statement))


class _admin:
    """An AUTOCOMMIT connection to the configured database; connection failures become a
    SetupError."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.engine = create_async_engine(
            url, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args=connect_args()
        )

    async def __aenter__(self) -> AsyncConnection:
        try:
            self.conn = await self.engine.connect()
        except Exception as exc:
            await self.engine.dispose()
            if (problem := explain(exc, self.url)) is not None:
                raise problem from None
            raise
        return self.conn

    async def __aexit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        await self.conn.close()
        await self.engine.dispose()
        if exc is not None and (problem := explain(exc, self.url)) is not None:
            raise problem from None  # e.g. a role that may not create databases


async def _check_ours(conn: AsyncConnection, db: str, ns: str) -> bool:
    """True if `db` exists and is ours to drop; False if it does not exist. A database of
    that name that is not ours is a SetupError: we never drop it."""
    row = (
        await conn.execute(
            text(
                "SELECT pg_get_userbyid(d.datdba) AS owner, shobj_description(d.oid, "
                "'pg_database') AS note, current_user AS me FROM pg_database d "
                "WHERE d.datname = :db"
            ),
            {"db": db},
        )
    ).one_or_none()
    if row is None:
        return False
    if row.owner != row.me or row.note != mark(ns):
        whose = f"role {row.owner!r}" if row.owner != row.me else "somebody else"
        raise SetupError(
            f"Database {db!r} already exists and belongs to {whose}, not to you "
            f"({row.me!r}, namespace {ns!r}): not dropping it. Fix: set DBKIT_NAMESPACE "
            "to a name of your own (e.g. your name), or ask the instructor."
        )
    return True


async def fresh_database(name: str, *, url: URL | None = None) -> URL:
    """Drop (ending its sessions) and create this learner's database `name`; return its
    URL. Refuses to drop a database this learner did not make."""
    server = url or database_url()
    ns = namespace(server)
    db = safe_name(name, ns)
    if server.database == db:
        raise SetupError(f"{db!r} is the configured database itself: pick another name.")
    async with _admin(server) as conn:
        # one at a time per name: six kernels re-creating one database do not collide
        await conn.execute(text("SELECT pg_advisory_lock(hashtext(:db))"), {"db": db})
        if await _check_ours(conn, db, ns):
            await conn.execute(text(f"DROP DATABASE {db} WITH (FORCE)"))
        await conn.execute(text(f"CREATE DATABASE {db}"))
        await conn.execute(text(f"COMMENT ON DATABASE {db} IS '{mark(ns)}'"))
        await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:db))"), {"db": db})
    return server.set(database=db)


async def drop_database(url: URL) -> None:
    """Drop a database made by fresh_database, ending its sessions."""
    db = url.database or ""
    if not db.startswith(PREFIX):
        raise ValueError(f"{db!r} was not made by fresh_database; not dropping it")
    async with _admin(url.set(database=database_url().database)) as conn:
        if await _check_ours(conn, db, namespace(url)):
            await conn.execute(text(f"DROP DATABASE {db} WITH (FORCE)"))


def scratch_dir(name: str) -> Path:
    """An empty folder of its own, inside this project (.dbkit/scratch/<name>), so that
    neither another user nor another clone of the course shares it; emptied first."""
    path = PROJECT_ROOT / ".dbkit" / "scratch" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
