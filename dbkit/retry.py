"""Retry what is safe to retry, and nothing else. Explained in
notebooks/09_failures_and_recovery.ipynb.

`pool_pre_ping` replaces a dead connection before a request uses it. It cannot help when
the connection dies in the middle of a transaction: that transaction fails, and the server
has rolled it back. Running the whole unit of work again from the start is then safe,
and `in_transaction()` does exactly that. It never retries:

* an error the data causes (a unique violation, a bad value): it would fail again;
* a connection lost during the COMMIT: the server may have committed before the
  connection died, so running the work again could do it twice;
* anything after `max_attempts`.

A COMMIT that the server *answers* with a serialization failure (40001, the usual place
for it under SERIALIZABLE) or a deadlock (40P01) did not commit anything: that one is
retried like a failure before the COMMIT.

Keep side effects that are not database work (an e-mail, an HTTP call) out of `work`:
they cannot be rolled back, so they would happen once per attempt.

`in_transaction` is the recommended unit of work (notebook 11): one session, one
transaction that commits at the end, on `dbkit.engine.make_fast_engine`. A read on the
read engine (`make_read_engine`), which has no transaction, uses `retry_once` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

T = TypeVar("T")

# serialization failure, deadlock; server shutting down, crashed, or still starting up
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03"})


def is_transient(exc: BaseException) -> bool:
    """True when the same transaction, run again from the start, may well succeed."""
    if isinstance(exc, DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None)
        return exc.connection_invalidated or sqlstate in TRANSIENT_SQLSTATES
    # no connection could be made (server down or restarting): nothing was sent
    return isinstance(exc, ConnectionRefusedError | FileNotFoundError | ConnectionResetError)


async def in_transaction(
    factory: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    max_attempts: int = 3,
    backoff: float = 0.05,
) -> T:
    """Run `work(session)` in a new session and transaction, and commit. If it fails with
    a transient error before the commit, or the server refuses the COMMIT with 40001 or
    40P01, start again with a new session (up to `max_attempts` in all, sleeping
    `backoff`, then twice that, ... in between)."""
    for attempt in range(1, max_attempts + 1):
        async with factory() as session:
            try:
                result = await work(session)
            except Exception as exc:
                if attempt == max_attempts or not is_transient(exc):
                    raise
            else:
                try:
                    await session.commit()
                    return result
                except DBAPIError as exc:
                    # the server answered "not committed": safe to run again. A lost
                    # connection (no answer: committed or not?) is never retried.
                    refused = getattr(exc.orig, "sqlstate", None) in {"40001", "40P01"}
                    if attempt == max_attempts or exc.connection_invalidated or not refused:
                        raise
        await asyncio.sleep(backoff * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


async def retry_once(work: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`await work(*args)`, idempotent work such as a read; if its connection turned out
    dead, run it once more: the pool has replaced the connection by then. The partner of
    an engine without pre-ping (`dbkit.engine.make_read_engine`): what its free checkout
    check cannot see, a connection whose network path died silently, fails the first try,
    not the request."""
    try:
        return await work(*args)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        return await work(*args)
