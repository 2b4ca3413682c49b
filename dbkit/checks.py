"""Leaks: connections still lent out when a notebook or a test ends. Explained in
notebooks/09_failures_and_recovery.ipynb.

A session that is never closed (a scoped session without `await Session.remove()`, a
connection opened without `async with`) keeps its pooled connection checked out: the pool
shrinks by one every time, until requests wait and time out. `assert_no_leaks(engine)` at
the end of a notebook or test makes that visible. Call it BEFORE `engine.dispose()`:
dispose() starts a new, empty pool, whose count of lent-out connections is 0 again, so a
check after it can never fail.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine


class LeakError(AssertionError):
    """Connections are still checked out of a pool that should be idle."""


def checked_out(engine: AsyncEngine) -> int:
    """How many connections of the engine's pool are lent out right now."""
    count = getattr(engine.pool, "checkedout", None)
    return count() if count is not None else 0  # NullPool keeps no count


def assert_no_leaks(*engines: AsyncEngine) -> None:
    """Raise LeakError naming every engine that still lends out connections."""
    leaks = [(e, n) for e in engines if (n := checked_out(e))]
    if leaks:
        lines = [
            f"database {e.url.database}: {n} connection(s) still checked out" for e, n in leaks
        ]
        raise LeakError(
            "; ".join(lines) + ". A session or connection was not closed: use `async with`, "
            "and end every task of an async_scoped_session with `await Session.remove()`."
        )


async def dispose_checked(*engines: AsyncEngine) -> None:
    """Check for leaks, then dispose every engine (even when a leak is found)."""
    try:
        assert_no_leaks(*engines)
    finally:
        for engine in engines:
            await engine.dispose()
