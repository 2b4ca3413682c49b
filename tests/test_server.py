"""The embedded server: cold start, attach from other processes, concurrent starts, stop,
reset; as root without opening up anybody's directories. Each test uses its own data
directory, so it never disturbs the server the rest of the suite uses."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dbkit import server
from dbkit.settings import PROJECT_ROOT
from tests.helpers import run_dbkit

ATTACH = "from dbkit import server; r = server.start(); print(r.pid, r.socket_dir)"


@pytest.fixture
def pgdata() -> Iterator[Path]:
    # a world-traversable parent: as root the server runs as another user
    parent = Path(tempfile.mkdtemp(prefix="dbkit-test-"))
    parent.chmod(0o755)
    yield parent / "pgdata"
    server.stop(parent / "pgdata")
    shutil.rmtree(parent, ignore_errors=True)


def attach(pgdata: Path) -> str:
    result = run_dbkit(code=ATTACH, env={"DBKIT_PGDATA": str(pgdata)})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_start_attach_stop_reset(pgdata: Path) -> None:
    assert server.status(pgdata) is None
    running = server.start(pgdata)  # cold: initdb, start, create the course database
    assert server.status(pgdata) == running
    # other processes attach to the same server instead of starting another
    assert attach(pgdata) == f"{running.pid} {running.socket_dir}"
    assert server.stop(pgdata) is True
    assert server.status(pgdata) is None
    assert server.stop(pgdata) is False
    again = server.start(pgdata)  # warm: the data is kept
    assert again.pid != running.pid
    server.reset(pgdata)
    assert server.status(pgdata) is None and not pgdata.exists()


def test_processes_starting_at_once_share_one_server(pgdata: Path) -> None:
    with ThreadPoolExecutor(4) as pool:
        seen = set(pool.map(lambda _: attach(pgdata), range(4)))
    assert len(seen) == 1, seen
    assert server.status(pgdata) is not None


def test_a_killed_client_cannot_keep_the_server_from_stopping(pgdata: Path) -> None:
    # a client that dies without cleaning up (kill -9 of a kernel) leaves nothing behind
    # that stop() depends on: the server has no list of client pids to go stale
    result = run_dbkit(
        code=ATTACH + "; import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
        env={"DBKIT_PGDATA": str(pgdata)},
    )
    assert result.returncode == -9
    assert server.status(pgdata) is not None
    assert server.stop(pgdata) is True


@pytest.mark.skipif(os.geteuid() != 0, reason="only root needs a second user")
def test_as_root_it_runs_as_another_user_and_opens_no_directory(pgdata: Path) -> None:
    modes_before = {p: p.stat().st_mode for p in [PROJECT_ROOT, *PROJECT_ROOT.parents]}
    running = server.start(pgdata)
    assert Path(f"/proc/{running.pid}").stat().st_uid == server.server_user().pw_uid != 0
    assert {p: p.stat().st_mode for p in modes_before} == modes_before


@pytest.mark.skipif(os.geteuid() != 0, reason="only root needs a second user")
def test_as_root_a_data_dir_the_server_user_cannot_reach_is_a_clear_error() -> None:
    private = Path(tempfile.mkdtemp(prefix="dbkit-private-"))  # mode 700
    try:
        result = run_dbkit("url", env={"DBKIT_PGDATA": str(private / "pgdata")})
        assert result.returncode == 1
        assert "cannot enter" in result.stderr and "DBKIT_PGDATA" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        shutil.rmtree(private)
