"""A COMMIT the server refuses with a serialization failure (40001) committed nothing, so
dbkit.retry runs the transaction again. Shown in notebook 09, section 2."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from dbkit.checks import dispose_checked
from dbkit.models import Author, Book, Loan, Member
from dbkit.retry import in_transaction
from tests.helpers import migrated_app

pytestmark = pytest.mark.anyio


async def test_a_serialization_failure_at_commit_is_retried() -> None:
    _, engine, factory = await migrated_app("test_rel_retry_commit", isolation_level="SERIALIZABLE")
    async with factory.begin() as session:
        ada = Member(name="Ada", email="ada@example.com")
        books = [Book(title=f"Book {n}", author=Author(name=f"Author {n}")) for n in range(3)]
        session.add_all([ada, *books, Loan(book=books[0], member=ada)])

    # Two lends for Ada at once, each allowed only while she has fewer than two books out.
    # Ordered with events, never with sleeps: both count (1 out), A inserts, B inserts,
    # A commits, and only then does B's work return, so that B's COMMIT is what fails.
    counted = {"A": asyncio.Event(), "B": asyncio.Event()}
    inserted = {"A": asyncio.Event(), "B": asyncio.Event()}
    a_committed = asyncio.Event()
    attempts = {"A": 0, "B": 0}

    def lend(who: str, book: Book):
        other = "B" if who == "A" else "A"

        async def work(session: AsyncSession) -> str:
            attempts[who] += 1
            first = attempts[who] == 1
            out = await session.scalar(
                select(func.count()).where(Loan.member_id == ada.id, Loan.returned_at.is_(None))
            )
            if first:
                counted[who].set()
                await counted[other].wait()
                if who == "B":
                    await inserted["A"].wait()
            if out >= 2:
                return "refused"
            session.add(Loan(book_id=book.id, member_id=ada.id))
            await session.flush()
            if first:
                inserted[who].set()
                await (inserted["B"] if who == "A" else a_committed).wait()
            return "lent"

        return work

    async def lend_a() -> str:
        try:
            return await in_transaction(factory, lend("A", books[1]))
        finally:
            a_committed.set()

    a, b = await asyncio.gather(lend_a(), in_transaction(factory, lend("B", books[2])))

    assert (a, b) == ("lent", "refused"), (a, b)
    assert attempts == {"A": 1, "B": 2}, attempts  # B's COMMIT failed (40001) and was retried
    async with factory() as session:
        out = await session.scalar(select(func.count()).where(Loan.returned_at.is_(None)))
    assert out == 2
    await dispose_checked(engine)


async def test_without_retry_the_commit_itself_raises_40001() -> None:
    """The same interleaving with plain sessions: the error comes at B's COMMIT."""
    _, engine, factory = await migrated_app("test_rel_commit_40001", isolation_level="SERIALIZABLE")
    async with factory.begin() as session:
        session.add(Member(name="Ada", email="ada@example.com"))

    async with factory() as a, factory() as b:
        for s in (a, b):
            await s.scalar(select(func.count()).select_from(Member))
        a.add(Member(name="Grace", email="grace@example.com"))
        b.add(Member(name="Alan", email="alan@example.com"))
        await a.flush()
        await b.flush()  # both inserts ran: nothing has failed yet
        await a.commit()
        with pytest.raises(DBAPIError) as refused:
            await b.commit()
    assert refused.value.orig.sqlstate == "40001"
    assert not refused.value.connection_invalidated
    await dispose_checked(engine)
