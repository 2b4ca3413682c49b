"""What a learner pastes from a hosting provider: each bad setting gives one clear line
through every entry point (doctor, `make url`, a notebook kernel, `alembic upgrade head`,
pytest's start), in bounded time, and no fragment of the password appears in the output or
in the server's log (issue 11; the table is in README.md's troubleshooting).

Every case runs in a copy of the project (so that it can have a `.env` of its own) with
this project's Python, and sets every database variable itself: the cases do not depend on
whether this run uses the embedded server or CI's external one.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from dbkit import server
from dbkit.database import database_url, target
from dbkit.databases import admin_execute, fresh_database
from dbkit.settings import PROJECT_ROOT
from tests.helpers import DB_VARIABLES, free_port

BOUND = 25.0  # seconds an entry point may take; asyncpg alone waits 60 s for a silent server
CLEARED = (*DB_VARIABLES, "DB_CONNECT_TIMEOUT", "DBKIT_PGDATA", "PGSSLMODE")
NO_CREATEDB_ROLE = "dbkit_t11_nocreatedb"
NO_CREATEDB_PASSWORD = "Nc4Qx8Rv2Lm6"
COPIED = [
    "dbkit",
    "bench",
    "migrations",
    "alembic.ini",
    "conftest.py",
    "pyproject.toml",
    "Makefile",
]
CELL = """\
import dbkit
print("dbkit from", dbkit.__file__)
from sqlalchemy import text
from dbkit.engine import make_engine
url = await dbkit.fresh_database("t11_cell")
engine = make_engine(url)
async with engine.connect() as conn:
    print("application_name:", await conn.scalar(text("SHOW application_name")))
    print("statement_timeout:", await conn.scalar(text("SHOW statement_timeout")))
await engine.dispose()
await dbkit.drop_database(url)
"""
# runs CELL in a real kernel (nbclient, as nbval does) and prints the cell's outputs
NOTEBOOK = """\
import json, sys
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(sys.argv[1])])
client = NotebookClient(
    nb, kernel_name="python3", timeout=60, resources={"metadata": {"path": "."}}
)
try:
    client.execute()
except CellExecutionError:
    pass
print("OUTPUTS", json.dumps(nb.cells[0].outputs))
"""
ENTRY_POINTS = {
    "doctor": ["-m", "dbkit", "doctor"],
    "url": ["-m", "dbkit", "url"],  # what `make url` runs
    "notebook": ["-c", NOTEBOOK, CELL],
    "alembic": ["-m", "alembic", "upgrade", "head"],
    "pytest": ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_started.py"],
}


def fragments(secret: str | None) -> set[str]:
    """Every 4-character piece of a password."""
    return {secret[i : i + 4] for i in range(len(secret) - 3)} if secret else set()


# ------------------------------------------------------------------ what the cases talk to


def _serve(listener: socket.socket, handle: Callable[[socket.socket], None]) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def _listen() -> tuple[socket.socket, int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener, listener.getsockname()[1]


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word."""
    held: list[socket.socket] = []
    listener, port = _listen()
    threading.Thread(target=_serve, args=(listener, held.append), daemon=True).start()
    yield port
    listener.close()
    for conn in held:
        conn.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        dst.close()
        src.close()


@pytest.fixture(scope="module")
def tcp_port_of_the_server() -> Iterator[int]:
    """The configured PostgreSQL (unix socket or TCP) on a local TCP port, byte for byte:
    what a server without SSL answers is what this PostgreSQL answers."""
    url = database_url()
    sockdir = url.query.get("host")

    def forward(client: socket.socket) -> None:
        if isinstance(sockdir, str) and sockdir.startswith("/"):
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(f"{sockdir}/.s.PGSQL.{url.port or 5432}")
        else:
            upstream = socket.create_connection((url.host or "localhost", url.port or 5432))
        threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
        _pipe(upstream, client)

    listener, port = _listen()
    threading.Thread(target=_serve, args=(listener, forward), daemon=True).start()
    yield port
    listener.close()


@pytest.fixture(scope="module")
def no_createdb_url() -> Iterator[URL]:
    """The configured server, as a role that may log in but not create databases."""
    asyncio.run(
        admin_execute(
            f"DROP ROLE IF EXISTS {NO_CREATEDB_ROLE}",
            f"CREATE ROLE {NO_CREATEDB_ROLE} LOGIN NOCREATEDB PASSWORD '{NO_CREATEDB_PASSWORD}'",
        )
    )
    yield database_url().set(username=NO_CREATEDB_ROLE, password=NO_CREATEDB_PASSWORD)
    asyncio.run(admin_execute(f"DROP ROLE IF EXISTS {NO_CREATEDB_ROLE}"))


@pytest.fixture(scope="module")
def params_database() -> URL:
    """A database of its own, for the case whose settings work (Alembic migrates it)."""
    return asyncio.run(fresh_database("t11_params"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's code, run with this Python; each case may give it a .env."""
    copy = tmp_path_factory.mktemp("t11") / "course"
    copy.mkdir()
    for name in COPIED:
        src = PROJECT_ROOT / name
        if src.is_dir():
            shutil.copytree(src, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, copy / name)
    (copy / "tests").mkdir()
    shutil.copy2(PROJECT_ROOT / "tests" / "sanitize.cfg", copy / "tests")
    (copy / "tests" / "test_started.py").write_text("def test_started() -> None:\n    pass\n")
    found = subprocess.run(
        [sys.executable, "-c", "import dbkit; print(dbkit.__file__)"],
        cwd=copy,
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.startswith(str(copy)), found.stdout  # the copy's dbkit, not ours
    return copy


def server_log() -> Path | None:
    """The configured server's log: the embedded one's, or CI's (DBKIT_TEST_SERVER_LOG)."""
    if target().source.startswith("the embedded"):
        return server.data_dir() / "server.log"
    given = os.environ.get("DBKIT_TEST_SERVER_LOG")
    return Path(given) if given else None


def test_the_server_log_is_read() -> None:
    """The log checks below only mean something when the log is known."""
    log = server_log()
    if log is None:
        pytest.skip("not known where this server logs (set DBKIT_TEST_SERVER_LOG)")
    assert log.is_file(), log


# ------------------------------------------------------------------------------ the table


@dataclass
class Servers:
    free: int  # nothing listens there
    silent: int
    tcp: int
    no_createdb: URL
    params: URL


@dataclass
class Case:
    name: str
    env: Callable[[Servers], dict[str, str]]
    line: str | None  # the one line expected (a part of it); None: these settings work
    secret: str | None = None
    dotenv: str | None = None
    url_works: bool = False  # `make url` needs no connection, so it succeeds
    not_applicable: set[str] = field(default_factory=set)


def _encoded(url: URL) -> str:
    return url.render_as_string(hide_password=False)


CASES = [
    Case(
        "an unencoded @ in the password",
        lambda s: {"DATABASE_URL": f"postgresql://course:Pa7@Wk3Xq9Zt@127.0.0.1:{s.free}/course"},
        "DATABASE_URL holds more than one '@'",
        secret="Pa7@Wk3Xq9Zt",
    ),
    Case(
        "a URL without //",
        lambda s: {"DATABASE_URL": "postgresql:/course:Hv5Tq2Mz8Ry@127.0.0.1/course"},
        "DATABASE_URL is not a URL that can be parsed",
        secret="Hv5Tq2Mz8Ry",
    ),
    Case(
        "channel_binding, which asyncpg does not support",
        lambda s: {
            "DATABASE_URL": f"postgresql://course:Bc3Nd7Fg9Jk@127.0.0.1:{s.free}/course"
            "?channel_binding=require"
        },
        "DATABASE_URL has the parameter channel_binding=",
        secret="Bc3Nd7Fg9Jk",
    ),
    Case(
        "connect_timeout, application_name and options work",
        lambda s: {
            "DATABASE_URL": _encoded(s.params)
            + ("&" if s.params.query else "?")
            + "connect_timeout=7&application_name=dbkit_t11&options=-c%20statement_timeout%3D4321"
        },
        None,
        url_works=True,
    ),
    Case(
        "connect_timeout bounds a server that never answers",
        lambda s: {
            "DATABASE_URL": f"postgresql://course:Ct6Wp1Ys4Qn@127.0.0.1:{s.silent}/course"
            "?connect_timeout=1"
        },
        "did not answer within the connect timeout",
        secret="Ct6Wp1Ys4Qn",
        url_works=True,
    ),
    Case(
        "sslmode=require against a server without SSL",
        lambda s: {
            "DATABASE_URL": f"postgresql://course:Sm2Kx7Lv5Pd@127.0.0.1:{s.tcp}/course"
            "?sslmode=require"
        },
        "does not offer SSL, but sslmode=require requires it",
        secret="Sm2Kx7Lv5Pd",
        url_works=True,
    ),
    Case(
        "DATABASE_URL= (a blank line in .env) is unset",
        lambda s: {"DB_HOST": "127.0.0.1", "DB_PORT": str(s.free), "DB_PASS": "Bl8Hq3Wn5Tc"},
        "Nothing is listening at 127.0.0.1:",  # so the DB_* variables were used
        secret="Bl8Hq3Wn5Tc",
        dotenv="DATABASE_URL=\n",
        url_works=True,
    ),
    *[
        Case(
            f"DB_PORT={port}",
            lambda s, port=port: {
                "DB_HOST": "127.0.0.1",
                "DB_PORT": port,
                "DB_PASS": "Dp9Rt3Vw6Kz",
            },
            "DB_PORT is not valid",
            secret="Dp9Rt3Vw6Kz",
        )
        for port in ("abc", "99999", "-5", "0")
    ],
    Case(
        "${X} inside DB_PASS in .env",
        lambda s: {"DB_HOST": "127.0.0.1", "DB_PORT": str(s.free)},
        "DB_PASS in .env holds '${...}'",
        secret="Jr4${DBKIT_T11_UNSET}Mw8Qe",
        dotenv="DB_PASS=Jr4${DBKIT_T11_UNSET}Mw8Qe\n",
    ),
    Case(
        "a server that accepts TCP and never answers",
        lambda s: {
            "DB_HOST": "127.0.0.1",
            "DB_PORT": str(s.silent),
            "DB_PASS": "Sv7Gm2Xc9Bq",
            "DB_CONNECT_TIMEOUT": "1",
        },
        "did not answer within the connect timeout",
        secret="Sv7Gm2Xc9Bq",
        url_works=True,
    ),
    Case(
        "the server is down",
        lambda s: {"DB_HOST": "127.0.0.1", "DB_PORT": str(s.free), "DB_PASS": "Dn5Yk8Pr3Hw"},
        "Nothing is listening at 127.0.0.1:",
        secret="Dn5Yk8Pr3Hw",
        url_works=True,
    ),
    Case(
        "a role without CREATEDB",
        lambda s: {"DATABASE_URL": _encoded(s.no_createdb)},
        f"User '{NO_CREATEDB_ROLE}' may not create databases",
        secret=NO_CREATEDB_PASSWORD,
        url_works=True,
        not_applicable={"alembic"},  # migrating needs no CREATEDB: it works, and would migrate
    ),
]


@pytest.fixture(scope="module")
def servers(
    silent_port: int, tcp_port_of_the_server: int, no_createdb_url: URL, params_database: URL
) -> Servers:
    return Servers(
        free_port(), silent_port, tcp_port_of_the_server, no_createdb_url, params_database
    )


def check_entry_point(entry: str, case: Case, out: str, code: int) -> None:
    """The one line, in the form each entry point gives it."""
    if entry == "notebook":  # what the learner sees is the cell's outputs; the kernel's own
        out = out.split("OUTPUTS ", 1)[1].splitlines()[0]  # stderr may hold zmq shutdown noise
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    if case.line is None:
        if entry == "doctor":
            assert "ok    connect:" in out and "gives up after 7 s" in out, out
            assert "ok    createdb:" in out, out
        elif entry == "notebook":
            assert "application_name: dbkit_t11" in out and "statement_timeout: 4321ms" in out
        else:
            assert code == 0, out
        return
    if entry == "url" and case.url_works:
        assert code == 0 and out.startswith("postgresql+asyncpg://"), out
        return
    assert case.line in out, out
    if entry == "doctor":
        assert code == 1 and [ln for ln in out.splitlines() if ln.startswith("FAIL")], out
        assert all(case.line in ln for ln in out.splitlines() if ln.startswith("FAIL")), out
    elif entry == "url":
        assert code == 1 and out.startswith("error: ") and len(out.strip().splitlines()) == 1
    elif entry == "notebook":
        outputs = json.loads(out)
        error = next(o for o in outputs if o["output_type"] == "error")
        assert error["ename"] == "SetupError" and len(error["traceback"]) == 1, error
        assert case.line in error["traceback"][0], error
    elif entry == "alembic":
        assert code != 0 and "FAILED: " in out, out
        assert len([ln for ln in out.splitlines() if case.line in ln]) == 1, out
    elif entry == "pytest":
        assert code == 4 and "error: " in out, out  # pytest.exit: nothing was run
        assert "passed" not in out and "failed" not in out, out


@pytest.mark.parametrize(
    ("case", "entry"),
    [
        pytest.param(case, entry, id=f"{case.name}-{entry}")
        for case in CASES
        for entry in ENTRY_POINTS
        if entry not in case.not_applicable
    ],
)
def test_one_clear_line(case: Case, entry: str, servers: Servers, project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(case.env(servers))
    dotenv = project / ".env"
    dotenv.unlink(missing_ok=True)
    if case.dotenv:
        dotenv.write_text(case.dotenv)
    log = server_log()
    log_start = log.stat().st_size if log else 0
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, *ENTRY_POINTS[entry]],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.monotonic() - started
    out = result.stdout + result.stderr
    if entry == "notebook":
        assert f"dbkit from {project}" in out, out  # the kernel ran the copy's dbkit
    check_entry_point(entry, case, out, result.returncode)
    assert seconds < BOUND, f"{entry} took {seconds:.1f} s"
    secrets = fragments(case.secret) | fragments(database_url().password)
    assert not [f for f in secrets if f in out], out
    if log:
        with log.open(errors="replace") as f:
            f.seek(log_start)
            written = f.read()
        assert not [f for f in secrets if f in written], written


def test_the_default_connect_timeout_is_bounded(silent_port: int, project: Path) -> None:
    """Nothing set: the doctor gives up after 10 s, not asyncpg's 60."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(DB_HOST="127.0.0.1", DB_PORT=str(silent_port))
    (project / ".env").unlink(missing_ok=True)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "dbkit", "doctor"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.monotonic() - started
    assert "did not answer within the connect timeout" in result.stdout, result.stdout
    assert 10 <= seconds < BOUND, seconds


def test_the_doctors_alembic_hint_runs_as_typed(project: Path, params_database: URL) -> None:
    """`alembic upgrade head` alone is not on PATH outside the venv; the hint must be."""
    fresh = asyncio.run(fresh_database("t11_hint"))
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(DATABASE_URL=_encoded(fresh), PATH="/usr/bin:/bin")
    doctor = subprocess.run(
        [sys.executable, "-m", "dbkit", "doctor"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = next(ln for ln in doctor.stdout.splitlines() if "migrations:" in ln)
    hint = line.split("To migrate it: `", 1)[1].split("`", 1)[0]
    ran = subprocess.run(
        ["sh", "-c", hint], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    again = subprocess.run(
        [sys.executable, "-m", "dbkit", "doctor"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "the configured database is at head" in again.stdout, again.stdout


# ------------------------------------------- an ordinary user's clone in a folder with a space

LEARNER = "dbkitlearner"  # made with useradd when the tests run as root
BOUNCER_CELL = """\
import dbkit
from dbkit import pgbouncer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
url = await dbkit.fresh_database("t11_bouncer")
print("socket dir:", url.query.get("host"))
with pgbouncer.start(url) as bouncer:  # what notebook 10 does
    engine = create_async_engine(bouncer.url)
    async with engine.connect() as conn:
        here = await conn.scalar(text("select current_database()"))
        print("through pgbouncer:", here == url.database)
    await engine.dispose()
await dbkit.drop_database(url)
"""


@pytest.fixture(scope="module")
def learners_clone() -> Iterator[Callable[..., str]]:
    """A copy of the project in `<tmp>/my course/`, owned by an ordinary user, with its own
    .venv made by `make install`; yields a function running a command there as that user."""
    base = Path(tempfile.mkdtemp(prefix="dbkit-t11-"))  # mode 700: the learner's alone
    clone = base / "my course"
    clone.mkdir()
    for name in [*COPIED, "README.md"]:
        src = PROJECT_ROOT / name
        if src.is_dir():
            shutil.copytree(src, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, clone / name)
    prefix: list[str] = []
    python = "python3"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(LEARNER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "-M",
                    "-d",
                    "/nonexistent",
                    "-s",
                    "/usr/sbin/nologin",
                    LEARNER,
                ],
                check=True,
            )
        subprocess.run(["chown", "-R", LEARNER, str(base)], check=True)
        prefix = ["runuser", "-u", LEARNER, "--"]
        python = "/usr/bin/python3"  # root's own Python may sit in a private folder
    env = {k: v for k, v in os.environ.items() if k not in CLEARED and not k.startswith("VIRTUAL")}
    env["HOME"] = str(clone)  # pip's cache and the like stay in the clone

    def run(*argv: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [*prefix, *argv], cwd=clone, env=env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    run("make", "install", f"PYTHON={python}", timeout=600)
    yield run
    subprocess.run(
        [*prefix, ".venv/bin/python", "-m", "dbkit", "stop"], cwd=clone, env=env, timeout=60
    )
    shutil.rmtree(base)


def test_make_url_shows_a_folder_with_a_space_as_it_is(learners_clone: Callable[..., str]) -> None:
    shown = learners_clone("make", "-s", "url")
    assert "?host=" in shown and "/my course/" in shown and "my+course" not in shown, shown


def test_notebook_10s_pgbouncer_works_from_a_folder_with_a_space(
    learners_clone: Callable[..., str],
) -> None:
    from dbkit import pgbouncer

    if not pgbouncer.available():
        pytest.skip(pgbouncer.INSTALL)
    out = learners_clone(".venv/bin/python", "-c", NOTEBOOK, BOUNCER_CELL)
    assert "/my course/" in out and "through pgbouncer: True" in out, out


# ------------------------------------------------------ whatever the shape, no password shown

SHAPES = [
    "postgresql://app:Wq5Ez8Ty3Ui@db.example/course?password=Wq5Ez8Ty3Ui",
    "postgresql://app@db.example/course?password=Wq5Ez8Ty3Ui",
    "postgresql://app:Wq5Ez8Ty3Ui@@db.example/course",
    "postgresql://app@corp:Wq5Ez8Ty3Ui@db.example/course",
    "postgresql://app:Wq5@Ez8?Ty3Ui@db.example/course",
    "postgresql://app:Wq5Ez8?Ty3&Ui=x@db.example/course",
    "postgresql:app:Wq5Ez8Ty3Ui@db.example/course",
    "postgresql//app:Wq5Ez8Ty3Ui@db.example/course",
    "Wq5Ez8Ty3Ui",
    "postgresql://app:Wq5Ez8Ty3Ui@db.example:port/course",
    "postgresql://app:Wq5Ez8Ty3Ui@db.example:-1/course",
    "postgresql://app:Wq5Ez8Ty3Ui@db.example/course?sslrootcert=/x&sslmode=verify-full",
    "postgresql://app:Wq5Ez8Ty3Ui@db.example/course?options=Wq5Ez8Ty3Ui",
    "postgresql://app:Wq5Ez8Ty3Ui@db.example/course?connect_timeout=Wq5Ez8Ty3Ui",
    "postgresql://app:Wq5Ez8Ty3Ui@db.example/course?sslmode=Wq5Ez8Ty3Ui",
]


@pytest.mark.parametrize("raw", SHAPES)
def test_no_shape_of_input_shows_the_password(raw: str) -> None:
    """What `make url` and the doctor print for it: the URL masked, or one line."""
    from dbkit.errors import SetupError
    from dbkit.settings import Settings, configured

    try:
        shown = str(configured(Settings(_env_file=None, database_url=raw)))
    except SetupError as exc:
        shown = str(exc)
        assert "Fix:" in shown and "\n" not in shown, shown
    assert not [f for f in fragments("Wq5Ez8Ty3Ui") if f in shown], shown


@pytest.mark.anyio
async def test_the_doctor_counts_the_connections_of_other_roles(
    no_createdb_url: URL, project: Path
) -> None:
    """The headroom line adds up, and counts a connection that another role holds open."""
    import re

    from dbkit.engine import make_engine

    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env["DATABASE_URL"] = _encoded(no_createdb_url)  # not a superuser
    (project / ".env").unlink(missing_ok=True)
    engine = make_engine()
    async with engine.connect():  # held open by the configured role while the doctor runs
        doctor = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "dbkit", "doctor"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    await engine.dispose()
    found = re.search(
        r"ok    connections: (-?\d+) free \(max_connections (\d+)"
        r" - superuser_reserved_connections (\d+) - (\d+) in use\)",
        doctor.stdout,
    )
    assert found, doctor.stdout
    free, most, reserved, in_use = map(int, found.groups())
    assert free == most - reserved - in_use and in_use >= 2, doctor.stdout
