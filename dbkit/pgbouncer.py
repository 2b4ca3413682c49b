"""PgBouncer in front of the configured server. Explained in notebooks/10_scaling_out.ipynb.

`start(upstream)` runs Debian's `pgbouncer` (apt-get install pgbouncer) on a free port of
127.0.0.1, forwarding every database of `upstream`'s server, and returns a `Bouncer` whose
`url` the app connects to instead. Stop it with `bouncer.stop()` (or `with start(...)`).
Its files live in a private folder tied to the process that started it
(`dbkit.server.private_dir`): when a kernel dies, its PgBouncer is stopped too, and
`make stop` stops any that are left.

Clients log in to PgBouncer with a password, always (scram-sha-256, read from an
`auth_file` in that private folder): the upstream one when the upstream role has one,
else a random one made for this run (the embedded server's `postgres` role has none).
PgBouncer refuses to run as root; as root it runs as the embedded server's user, `dbkit`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from sqlalchemy.engine import URL

from dbkit import server
from dbkit.errors import SetupError
from dbkit.urls import host_of

INSTALL = (
    "PgBouncer is not installed. Install it with `sudo apt-get install pgbouncer` "
    "(Debian, Ubuntu) or `brew install pgbouncer` (macOS), then restart the kernel."
)


def binary() -> Path | None:
    """The pgbouncer program, or None when it is not installed. DBKIT_PGBOUNCER, when set,
    names the program instead (set it empty to act as if PgBouncer were missing)."""
    given = os.environ.get("DBKIT_PGBOUNCER")
    if given is not None:
        return Path(given) if given and Path(given).is_file() else None
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")
    return Path(found) if found else None


def available() -> bool:
    return binary() is not None


@dataclass
class Bouncer:
    """A running PgBouncer: connect to `url`; `stop()` ends it and removes its files."""

    url: URL
    process: subprocess.Popen[bytes]
    workdir: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        server.stop_private(self.workdir)

    def log(self) -> str:
        """PgBouncer's own log (it may hold host names, never a password)."""
        path = self.workdir / "pgbouncer.log"
        return path.read_text() if path.exists() else ""

    def __enter__(self) -> Bouncer:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start(
    upstream: URL, *, pool_mode: str = "transaction", pool_size: int = 2, name: str = "pgbouncer"
) -> Bouncer:
    """PgBouncer for `upstream`'s server on a free local port; `pool_size` server
    connections per (database, user) pair, handed out per transaction by default.
    Starting another with the same `name` in this process (a cell run twice) stops the
    previous one first."""
    program = binary()
    if program is None:
        raise SetupError(INSTALL)
    host = host_of(upstream)
    user = upstream.username or "postgres"
    password = upstream.password or secrets.token_urlsafe(16)
    if any(c in user for c in '"\\\n') or any(c in host for c in "\\\n"):
        raise SetupError(f"dbkit.pgbouncer cannot quote the host or user {host!r}, {user!r}")
    quoted_host = "'" + host.replace("'", "''") + "'"  # a socket dir may hold spaces
    workdir = server.private_dir(name)
    runs_as = _unprivileged_user()
    quoted = password.replace('"', '""')
    (workdir / "users.txt").write_text(f'"{user}" "{quoted}"\n')
    (workdir / "users.txt").chmod(0o600)
    for attempt in range(3):  # a free port can be taken between finding it and binding it
        port = _free_port()
        (workdir / "pgbouncer.ini").write_text(
            f"""[databases]
* = host={quoted_host} port={upstream.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {workdir / "users.txt"}
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = 200
logfile = {workdir / "pgbouncer.log"}
pidfile = {workdir / "pgbouncer.pid"}
ignore_startup_parameters = extra_float_digits
"""
        )
        if runs_as is not None:
            for path in [workdir, *workdir.iterdir()]:
                os.chown(path, *runs_as)
        process = subprocess.Popen(
            [str(program), str(workdir / "pgbouncer.ini")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            **({} if runs_as is None else {"user": runs_as[0], "group": runs_as[1]}),
        )
        bouncer = Bouncer(
            URL.create(
                upstream.drivername,
                username=user,
                password=password,
                host="127.0.0.1",
                port=port,
                database=upstream.database,
            ),
            process,
            workdir,
        )
        if _wait_listening(process, port):
            return bouncer
        log = bouncer.log()
        process.wait()
        if attempt == 2 or "Address already in use" not in log:
            bouncer.stop()
            last = log.strip().splitlines()[-1:] or ["no log"]
            raise SetupError(f"PgBouncer did not start: {last[0]}")
    raise AssertionError("unreachable")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(process: subprocess.Popen[bytes], port: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def _unprivileged_user() -> tuple[int, int] | None:
    """(uid, gid) to run as when we are root, as the embedded server does; else None."""
    if os.geteuid() != 0:
        return None
    user = server.server_user()
    assert user is not None
    return user.pw_uid, user.pw_gid
