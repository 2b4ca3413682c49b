"""pytest set-up shared by tests/ and notebooks/ (the notebooks run through nbval).

The embedded server, when it is the configured database, is started once before the run
and stopped after it, unless it was already running (then it is left as it was).
"""

from __future__ import annotations

import pytest

from dbkit import server
from dbkit.settings import load, target

_started_here = False


def pytest_configure(config: pytest.Config) -> None:
    global _started_here
    if hasattr(config, "workerinput"):  # an xdist worker: the controller did this
        return
    settings = load()
    was_running = server.status() is not None
    t = target(settings)  # starts the embedded server when it is the configured one
    _started_here = t.source.startswith("the embedded") and not was_running


def pytest_unconfigure(config: pytest.Config) -> None:
    if _started_here:
        server.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
