"""The embedded server: cold start, attach from other processes, concurrent starts, stop,
reset; as root without opening up anybody's directories. Each test uses its own data
directory, so it never disturbs the server the rest of the suite uses."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from dbkit import pgbouncer, server
from dbkit.settings import PROJECT_ROOT
from tests.helpers import DB_VARIABLES, run_dbkit

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


CONNECT = (
    "import asyncio, asyncpg; from dbkit import server; r = server.start()\n"
    "c = asyncio.run(asyncpg.connect(host=str(r.socket_dir), user='postgres', database='course'))\n"
    "print(r.pid, r.socket_dir)"
)


def test_processes_starting_at_once_share_one_server(pgdata: Path) -> None:
    # each one may use the course's database at once: none attaches before it exists
    def connect(_: int) -> str:
        result = run_dbkit(code=CONNECT, env={"DBKIT_PGDATA": str(pgdata)})
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    with ThreadPoolExecutor(4) as pool:
        seen = set(pool.map(connect, range(4)))
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


# --- a room: one server, many users of it, and other users of the machine ---------------

HOLD = (
    "import sys\n"
    "from dbkit import server\n"
    "was_running = server.status() is not None\n"
    "server.start()\n"
    "if 'session' in sys.argv and not was_running: server.stop_when_done()  # as make lab\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "if 'session' in sys.argv: print(server.leave(wait=0.5), flush=True)\n"
)


def holder(pgdata: Path, *args: str) -> subprocess.Popen[str]:
    """A process using the server (a lab, a kernel, a test run) until its stdin says go."""
    env = {**os.environ, "DBKIT_PGDATA": str(pgdata)}
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD, *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def release(p: subprocess.Popen[str]) -> str:
    out, _ = p.communicate("go\n", timeout=60)
    return out.strip()


def test_the_server_lives_as_long_as_anyone_uses_it(pgdata: Path) -> None:
    lab = holder(pgdata, "session")  # `make lab`: it started the server
    other = holder(pgdata)  # a second lab's kernel in the same clone
    # the first lab closes: the server stays up for the kernel that still uses it
    assert (
        release(lab) == "left the embedded PostgreSQL running: another lab, kernel or test uses it"
    )
    assert server.status(pgdata) is not None
    # and `make stop` will not pull it from under that kernel either
    stop = run_dbkit("stop", env={"DBKIT_PGDATA": str(pgdata)})
    assert stop.returncode == 1 and "in use by another process" in stop.stderr, stop.stderr
    assert "Traceback" not in stop.stderr
    assert server.status(pgdata) is not None
    release(other)
    # nobody uses it now: a session that started it stops it when it leaves
    last = holder(pgdata, "session")
    assert release(last) == "left the embedded PostgreSQL as it was"  # it did not start it
    assert run_dbkit("stop", env={"DBKIT_PGDATA": str(pgdata)}).returncode == 0
    starter = holder(pgdata, "session")
    assert release(starter) == "stopped the embedded PostgreSQL, which this session had started"
    assert server.status(pgdata) is None


def test_a_stale_pid_file_is_recognised_and_nothing_else_is_signalled(pgdata: Path) -> None:
    server.start(pgdata)
    pidfile_text = (pgdata / "postmaster.pid").read_text()
    assert server.stop(pgdata)
    bystander = subprocess.Popen(["sleep", "60"])  # the pid now belongs to another program
    try:
        lines = pidfile_text.splitlines()
        (pgdata / "postmaster.pid").write_text("\n".join([str(bystander.pid), *lines[1:]]) + "\n")
        assert server.status(pgdata) is None
        env = {"DBKIT_PGDATA": str(pgdata)}
        stop = run_dbkit("stop", env=env)
        assert stop.stdout.strip().endswith("it was not running"), stop.stdout + stop.stderr
        assert bystander.poll() is None, "stop signalled an unrelated process"
        url = run_dbkit("url", env=env)  # and a start replaces the stale file
        assert url.returncode == 0, url.stderr
        running = server.status(pgdata)
        assert running is not None and running.pid != bystander.pid
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


KERNEL = (
    "import os, sys\n"
    "from dbkit import server, pgbouncer\n"
    "folder = server.private_dir('nb09')\n"
    "first = server.start(folder / 'pgdata')\n"
    "folder = server.private_dir('nb09')  # the cell, run again\n"
    "running = server.start(folder / 'pgdata')\n"
    "bouncer = pgbouncer.start(running.url) if pgbouncer.available() else None\n"
    "print(first.pid, running.pid, bouncer.process.pid if bouncer else 0, folder, flush=True)\n"
    "sys.stdin.readline()\n"
)


def processes() -> list[tuple[int, str]]:
    """(pid, command line) of every process we can see."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            found.append((int(proc.name), (proc / "cmdline").read_bytes().decode(errors="replace")))
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    return server._process_name(pid) is not None


def gone_within(seconds: float, *pids: int) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def start_kernel(code: str) -> tuple[subprocess.Popen[str], list[str]]:
    """A process standing in for a kernel that runs `code`, and the first line it prints
    (its servers' pids and folder), split."""
    kernel = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert kernel.stdout is not None
    return kernel, kernel.stdout.readline().split()


def test_a_killed_kernel_takes_its_private_servers_with_it() -> None:
    kernel, (first, second, bouncer, folder) = start_kernel(KERNEL)
    assert gone_within(10, int(first)), "re-running the cell left the first server running"
    assert alive(int(second))
    kernel.kill()  # kill -9: no finalizer, no atexit
    kernel.wait()
    assert gone_within(20, int(second), int(bouncer)), "the private servers outlived the kernel"
    deadline = time.monotonic() + 10
    while Path(folder).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(folder).exists()


def test_make_stop_stops_private_servers_that_were_left() -> None:
    kernel, (_, second, bouncer, folder) = start_kernel(KERNEL)
    # the watcher dies too, as if the whole session had been killed
    watchers = [pid for pid in processes() if "_watch" in pid[1] and folder in pid[1]]
    assert watchers
    for pid, _ in watchers:
        os.kill(pid, signal.SIGKILL)
    kernel.kill()
    kernel.wait()
    assert alive(int(second))
    # another kernel, alive: its servers are not "left"
    running, (_, its_server, _, its_folder) = start_kernel(KERNEL.replace("'nb09'", "'nb10'"))
    try:
        stop = run_dbkit("stop", env={"DBKIT_PGDATA": str(PROJECT_ROOT / "no-such-server")})
        assert stop.returncode == 0, stop.stderr
        assert f"stopped the private servers a notebook had left in {Path(folder).name}" in (
            stop.stdout
        )
        assert gone_within(10, int(second), int(bouncer)) and not Path(folder).exists()
        assert alive(int(its_server)) and Path(its_folder).exists()
    finally:
        running.communicate("go\n", timeout=60)


OTHER_USER = "dbkit-other"  # another user of the machine, made by the tests


def as_other_user(*command: str) -> subprocess.CompletedProcess[str]:
    """Run a command as another OS user of this machine."""
    subprocess.run(
        ["useradd", "--system", "--no-create-home", OTHER_USER], capture_output=True, check=False
    )
    return subprocess.run(
        ["runuser", "-u", OTHER_USER, "--", *command],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="making a second OS user needs root")
@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_another_user_cannot_squat_the_socket_folder_or_log_in(pgdata: Path) -> None:
    deep = pgdata.parent / ("long-" * 20) / "pgdata"  # too long a path for a socket
    deep.parent.mkdir(mode=0o755)
    # where the socket used to go: a name anybody could work out, and make first
    guess = Path(tempfile.gettempdir()) / f"dbkit-{hashlib.sha256(bytes(deep)).hexdigest()[:8]}"
    squat = as_other_user("sh", "-c", f"mkdir '{guess}' && chmod 1777 '{guess}'")
    try:
        assert squat.returncode == 0, squat.stderr
        sockets = server.start(deep).socket_dir
        assert sockets != guess and sockets.stat().st_uid == server.server_user().pw_uid
        assert sockets.stat().st_mode & 0o777 == 0o700
        assert not any(guess.iterdir())
        # even with the socket folder opened by mistake, peer authentication refuses them
        sockets.chmod(0o755)
        login = as_other_user(
            "psql", "-h", str(sockets), "-U", "postgres", "-d", "postgres", "-c", "SELECT 1"
        )
        assert login.returncode != 0, login.stdout
        assert "Peer authentication failed" in login.stderr, login.stderr
    finally:
        server.stop(deep)
        shutil.rmtree(guess, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the symlink attack is one on root")
def test_a_planted_symlink_lock_file_is_refused_and_its_target_untouched(pgdata: Path) -> None:
    precious = pgdata.parent / "precious"
    precious.write_text("keep me")
    pgdata.parent.mkdir(exist_ok=True)
    (pgdata.parent / f".{pgdata.name}.users").symlink_to(precious)
    result = run_dbkit("url", env={"DBKIT_PGDATA": str(pgdata)})
    assert result.returncode == 1 and "lock file" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert precious.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root keeps its servers in /var/lib/dbkit")
def test_as_root_nothing_of_the_server_is_in_a_shared_temporary_folder() -> None:
    tmp = Path(tempfile.gettempdir()).resolve()
    for path in (server.default_data_dir(), server._binaries()):
        assert not path.resolve().is_relative_to(tmp), path
    for folder in (server.ROOT_STATE, server.state_dir()):
        st = folder.stat()
        assert st.st_uid == 0 and not st.st_mode & 0o022, folder


@pytest.mark.parametrize(
    ("notebook", "last_cell"),
    [
        ("09_failures_and_recovery", "private = server.start(private_dir"),
        ("10_scaling_out", "bouncer = pgbouncer.start(url"),
    ],
)
def test_a_kernel_killed_part_way_through_a_notebook_leaves_no_server(
    notebook: str, last_cell: str
) -> None:
    if "pgbouncer" in last_cell and not pgbouncer.available():
        pytest.skip(pgbouncer.INSTALL)
    path = PROJECT_ROOT / "notebooks" / f"{notebook}.ipynb"
    nb = nbformat.read(path, as_version=4)
    upto = next(i for i, c in enumerate(nb.cells) if last_cell in c.source)
    client = NotebookClient(
        nb, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells[: upto + 1]):
            if cell.cell_type == "code":
                client.execute_cell(cell, i)
        probe = nbformat.v4.new_code_cell("import os; print(os.getpid())")
        nb.cells.append(probe)
        client.execute_cell(probe, len(nb.cells) - 1)
        kernel_pid = int(probe.outputs[0]["text"])
        folders = list((server.state_dir() / "private").glob(f"*-{kernel_pid}"))
        servers = [int(p.read_text().split()[0]) for f in folders for p in f.rglob("*.pid")]
        assert folders and len(servers) == (2 if "pgbouncer" in last_cell else 1), servers
        os.kill(kernel_pid, signal.SIGKILL)
    assert gone_within(20, *servers), "a private server outlived its kernel"
    deadline = time.monotonic() + 10
    while any(f.exists() for f in folders) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(f.exists() for f in folders)


def test_a_test_run_stops_the_embedded_server_it_started() -> None:
    """`make test` with no server running starts the embedded one and, nobody else using it,
    stops it when it ends (conftest: stop_when_done, then leave). It used to learn the
    namespace first, which started the server, so the run thought it had found it running
    and left it behind."""
    pgdata = server.private_dir("autostop") / "pgdata"  # a server of this test's own
    env = {k: v for k, v in os.environ.items() if k not in DB_VARIABLES}
    env["DBKIT_PGDATA"] = str(pgdata)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_settings.py"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (pgdata / "PG_VERSION").exists(), "the run did not use the server of this test"
    assert server.status(pgdata) is None, "the test run left the server it started running"
