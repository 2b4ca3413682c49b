"""pytest set-up shared by tests/ and notebooks/ (the notebooks run through nbval).

* The tests work in a namespace of their own (`test<yours>`), so they never touch the
  databases of your notebooks, whatever you have open.
* The embedded server, when it is the configured database, is started once before the run
  and stopped after it, unless it was already running or somebody else still uses it.
* At the end, the time each notebook took (all its cells, kernel start included).
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict

import pytest

from dbkit import server
from dbkit.database import target
from dbkit.databases import namespace
from dbkit.errors import SetupError, check, no_createdb, where
from dbkit.settings import load

TEST_NAMESPACE_PREFIX = "test"
_embedded = False
_notebook_seconds: defaultdict[str, float] = defaultdict(float)


def pytest_configure(config: pytest.Config) -> None:
    global _embedded
    if hasattr(config, "workerinput"):  # an xdist worker: the controller did this
        return
    try:  # a database that cannot be used stops the run here, with one line
        # The tests' databases carry a namespace of their own ("test" + yours), inherited
        # by every kernel and subprocess: a test never touches a database of your notebooks.
        was_running = server.status() is not None  # before anything could start it
        os.environ["DBKIT_NAMESPACE"] = TEST_NAMESPACE_PREFIX + namespace()
        t = target(load())  # starts the embedded server when it is the configured one
        _embedded = t.source.startswith("the embedded")
        if _embedded and not was_running:
            server.stop_when_done()  # by the last lab or test run to leave, not under another
        facts = asyncio.run(check(t.url, t.connect_args))
        if not facts.can_create_databases:
            raise no_createdb(facts.role, where(t.url))
    except SetupError as exc:
        pytest.exit(f"error: {exc}", returncode=4)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _embedded:
        server.leave()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without PgBouncer, skip the notebook cells that need it (their stored outputs were
    made with it), saying how to install it. CI installs it, so there they all run."""
    from dbkit import pgbouncer

    if pgbouncer.available():
        return
    skip = pytest.mark.skip(reason=pgbouncer.INSTALL)
    for item in items:
        cell = getattr(item, "cell", None)  # nbval's notebook cell items
        if cell is not None and "HAVE_PGBOUNCER" in cell.get("source", ""):
            item.add_marker(skip)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not _notebook_seconds:
        return
    terminalreporter.section("time per notebook")
    for path, seconds in sorted(_notebook_seconds.items()):
        terminalreporter.write_line(f"{seconds:6.1f} s  {path}")
    total = sum(_notebook_seconds.values())
    terminalreporter.write_line(f"{total:6.1f} s  all notebooks")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
