"""Small helpers shared by the tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dbkit import fresh_database, migrate
from dbkit.demo import app_engine
from dbkit.engine import make_session_factory
from dbkit.settings import PROJECT_ROOT

DB_VARIABLES = ("DATABASE_URL", "DB_USER", "DB_PASS", "DB_HOST", "DB_PORT", "DB_NAME")


def run_dbkit(
    *args: str, env: dict[str, str] | None = None, code: str | None = None, cwd: Path = PROJECT_ROOT
) -> subprocess.CompletedProcess[str]:
    """`python -m dbkit <args>` (or `python -c <code>`) with the DB variables replaced by
    `env`, so a test decides exactly which database the subprocess sees."""
    base = {k: v for k, v in os.environ.items() if k not in DB_VARIABLES}
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "dbkit", *args]
    return subprocess.run(
        argv, env={**base, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=120
    )


async def migrated_app(
    name: str, **engine_options: object
) -> tuple[URL, AsyncEngine, async_sessionmaker[AsyncSession]]:
    """A fresh database `name` at the project's head, an engine on it whose connections
    are tagged `name` (dbkit.demo.app_engine, so a test can terminate them), and a session
    factory on that engine."""
    url = await fresh_database(name)
    await migrate.upgrade(url)
    engine = app_engine(url, name, **engine_options)
    return url, engine, make_session_factory(engine)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_api(port: int, path: str, token: str | None, method: str = "GET") -> dict:
    """Call the Jupyter server's REST API."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token:
        request.add_header("Authorization", f"token {token}")
    with urllib.request.urlopen(request, data=b"{}" if method == "POST" else None) as r:
        return json.loads(r.read())


@contextmanager
def running_lab(token: str, **environ: str) -> Iterator[int]:
    """`python -m dbkit lab` (what `make lab` runs) on a free port, with no display and
    `environ` added; yields the port once the server answers, and stops it afterwards."""
    port = free_port()
    env = {**os.environ, "JUPYTER_PORT": str(port), "JUPYTER_TOKEN": token, **environ}
    env.pop("DISPLAY", None)  # no display: it must not try to open a browser
    # its log goes to a file: a pipe nobody reads fills up and stops the server
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dbkit", "lab"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            for _ in range(240):  # up to a minute
                if _answers(port, token) or proc.poll() is not None:
                    break
                time.sleep(0.25)
            if not _answers(port, token):
                log.seek(0)
                raise RuntimeError(f"the lab did not come up:\n{log.read()[-2000:]}")
            yield port
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def _answers(port: int, token: str) -> bool:
    try:
        lab_api(port, "/api/status", token)
    except (urllib.error.URLError, ConnectionError):
        return False
    return True
