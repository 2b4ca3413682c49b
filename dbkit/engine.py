"""Engine, session factory and scoped session. Explained in notebooks 04–07.

Two sets of functions, side by side:

* `seed_*` build exactly what many FastAPI services are written with
  (`sessionmaker(class_=AsyncSession)`, `async_scoped_session(scopefunc=current_task)`);
* `make_session_factory` and `session_scope` are the spelling SQLAlchemy 2 recommends:
  `async_sessionmaker` and one session per unit of work, closed when it ends.
"""

from __future__ import annotations

from asyncio import current_task
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_scoped_session,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import sessionmaker

from dbkit.settings import connect_args, database_url


def make_engine(url: URL | None = None, *, echo: bool = False, **options: Any) -> AsyncEngine:
    """`create_async_engine(url, echo=..., pool_pre_ping=True)`; url defaults to the
    configured database. Extra options (pool_size, ...) go straight to SQLAlchemy; the
    connect timeout and server settings come from dbkit.settings.connect_args()."""
    options.setdefault("pool_pre_ping", True)
    options.setdefault("connect_args", connect_args())
    return create_async_engine(url or database_url(), echo=echo, **options)


def seed_session_factory(engine: AsyncEngine) -> sessionmaker[AsyncSession]:  # type: ignore[type-var]
    """The seed's factory: the 1.4 spelling, still working in 2.x."""
    return sessionmaker(engine, expire_on_commit=False, class_=AsyncSession)  # type: ignore[call-overload]


def seed_scoped_session(
    factory: sessionmaker[AsyncSession] | async_sessionmaker[AsyncSession],  # type: ignore[type-var]
) -> async_scoped_session[AsyncSession]:
    """The seed's registry: one session per asyncio task. Each task must end with
    `await Session.remove()`, or its session and connection are never given back.
    remove() must run in the task that used the session: FastAPI's
    `@app.middleware("http")` runs the endpoint in another task (notebook 07)."""
    return async_scoped_session(session_factory=factory, scopefunc=current_task)


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The recommended factory."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One session, one transaction: commit at the end, roll back on an exception, and
    always close (the connection goes back to the pool)."""
    async with factory() as session, session.begin():
        yield session
