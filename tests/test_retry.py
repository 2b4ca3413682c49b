"""Retries: dbkit.retry reruns a transaction only when that is safe. Shown in notebook 09."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dbkit.checks import dispose_checked
from dbkit.demo import terminate
from dbkit.models import Author, Tag
from dbkit.retry import in_transaction
from tests.helpers import migrated_app

pytestmark = pytest.mark.anyio


async def test_retry_reruns_a_transaction_whose_connection_died_before_commit() -> None:
    url, engine, factory = await migrated_app("test_rel_retry")
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
    url, engine, factory = await migrated_app("test_rel_noretry")
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
