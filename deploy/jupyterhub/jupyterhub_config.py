"""JupyterHub for a workshop on one machine (deploy/jupyterhub/README.md).

Every learner is a real system user in the group `dbkit-learners` (add-learners.sh makes
them, each with a password of their own), logs in with that password (PAM), and gets a
server of their own (LocalProcessSpawner) running as that user, with a private copy of
the course in ~/course made on their first login. Idle servers are stopped after an hour.

Run it as root, from the course's environment (make-env.sh builds it):

    /opt/dbkit-course/bin/jupyterhub -f deploy/jupyterhub/jupyterhub_config.py

Settings, from the hub's environment:

DBKIT_HUB_COURSE      the course checkout each learner gets a copy of (this repository)
DBKIT_HUB_ENV         the Python environment learners' servers run in (/opt/dbkit-course)
DBKIT_HUB_DATABASE    `embedded` (default): each learner's own PostgreSQL, in their copy;
                      `shared`: one server for the room, DBKIT_HUB_SHARED_URL below
DBKIT_HUB_SHARED_URL  postgresql://ROLE:PASSWORD@HOST:PORT/DBNAME of a role with CREATEROLE
                      (the hub's alone: learners never see it). Each learner gets a role of
                      their own, named as they are, with a new password at every start
DBKIT_HUB_BIND_URL    where the hub listens (http://:8000); put TLS in front of it
DBKIT_HUB_ADMINS      comma-separated instructors' user names (they need not be learners)
DBKIT_HUB_IDLE_MINUTES  stop a server idle this long (60)
"""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import subprocess
import sys
import tarfile
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import unquote, urlsplit

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (JupyterHub provides it)

HERE = Path(__file__).resolve().parent
COURSE = Path(os.environ.get("DBKIT_HUB_COURSE", HERE.parent.parent)).resolve()
ENV = Path(os.environ.get("DBKIT_HUB_ENV", "/opt/dbkit-course"))
DATABASE = os.environ.get("DBKIT_HUB_DATABASE", "embedded")
SHARED_URL = os.environ.get("DBKIT_HUB_SHARED_URL", "")
LEARNERS = "dbkit-learners"  # the system group allowed to log in
COPY = "course"  # each learner's copy: ~/course
ROLE_MARK = "dbkit hub learner"  # the comment on every role the hub made; it alters no other


def fail(message: str) -> None:
    """One clear line, then the hub does not start."""
    sys.exit(f"jupyterhub_config.py: {message}")


def reachable_by_all(path: Path) -> bool:
    """Can a learner (any user) run this file? Every folder above it must be enterable."""
    real = path.resolve()
    return real.exists() and all(p.stat().st_mode & 0o001 for p in [real, *real.parents])


# --- checks: a wrong setting stops the hub with the fix, not a learner's server later ---
if DATABASE not in ("embedded", "shared"):
    fail(f"DBKIT_HUB_DATABASE is {DATABASE!r}. Fix: set it to embedded or shared.")
if DATABASE == "shared" and not SHARED_URL.startswith(("postgresql://", "postgres://")):
    fail("DBKIT_HUB_DATABASE=shared needs DBKIT_HUB_SHARED_URL=postgresql://ROLE:PW@HOST:PORT/DB.")
if not (COURSE / "dbkit" / "__init__.py").exists():
    fail(f"DBKIT_HUB_COURSE={COURSE} is not a copy of the course. Fix: point it at one.")
GIT = ["git", "-c", f"safe.directory={COURSE}", "-C", str(COURSE)]  # whoever owns the checkout
if subprocess.run([*GIT, "rev-parse"], capture_output=True).returncode:
    fail(f"DBKIT_HUB_COURSE={COURSE} is not a git checkout. Fix: git clone the course there.")
if not reachable_by_all(ENV / "bin" / "python"):
    fail(
        f"{ENV}/bin/python is missing or not runnable by other users (a Python under /root "
        "is not). Fix: build the environment with make-env.sh, from a system Python."
    )
if find_spec("jupyterhub_idle_culler") is None:
    fail("jupyterhub-idle-culler is not installed. Fix: run the hub from make-env.sh's env.")

# --- the hub ---------------------------------------------------------------------------
c.JupyterHub.bind_url = os.environ.get("DBKIT_HUB_BIND_URL", "http://:8000")
proxy = HERE / "node_modules" / ".bin" / "configurable-http-proxy"  # `npm ci` here
if proxy.exists():
    c.ConfigurableHTTPProxy.command = [str(proxy)]

# Authentication: PAM, i.e. the learners' own system passwords (add-learners.sh hands
# them out). Not one shared password: with it, anybody could log in as anybody else and
# open their work. Only members of the group may log in: not root, nor a service account.
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {LEARNERS}
c.Authenticator.admin_users = {a for a in os.environ.get("DBKIT_HUB_ADMINS", "").split(",") if a}

# --- each learner's server -------------------------------------------------------------
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(ENV / "bin" / "python"), "-m", "jupyterhub.singleuser"]
c.Spawner.notebook_dir = f"~/{COPY}"
c.Spawner.default_url = "/lab/tree/notebooks/student/00_setup.ipynb"
# Nothing of the hub's own environment (its PATH, a virtualenv under /root, DB_*
# variables) reaches a learner; only what is set here.
c.Spawner.env_keep = ["LANG", "LC_ALL"]
c.Spawner.environment = {
    "PATH": f"{ENV}/bin:/usr/local/bin:/usr/bin:/bin",
    # dbkit is imported from the learner's own copy, so its .dbkit/ (the embedded
    # server's data) is theirs too
    "PYTHONPATH": lambda spawner: str(home(spawner) / COPY),
}


def home(spawner) -> Path:  # type: ignore[no-untyped-def]
    return Path(pwd.getpwnam(spawner.user.name).pw_dir)


def run_as(spawner, argv: list[str], cwd: Path | None = None, env: dict | None = None, **kw):  # type: ignore[no-untyped-def]
    """Run a command as the learner, umask 077: root never writes in a learner's folders."""
    user = pwd.getpwnam(spawner.user.name)
    return subprocess.run(
        argv,
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        umask=0o077,
        cwd=cwd or user.pw_dir,
        env={"HOME": user.pw_dir, "PATH": "/usr/bin:/bin", "LC_ALL": "C", **(env or {})},
        capture_output=True,
        timeout=120,
        **kw,
    )


def course_files() -> list[str]:
    """The files of the course as the repository has them: no .venv, .dbkit or .env."""
    listed = subprocess.run([*GIT, "ls-files", "-z"], capture_output=True, check=True).stdout
    return [f for f in listed.decode().split("\0") if f and (COURSE / f).exists()]


def copy_course(spawner) -> None:  # type: ignore[no-untyped-def]
    """First login: the learner's own copy in ~/course, private to them. A copy that is
    there already is never touched: it holds their work."""
    if (home(spawner) / COPY).exists() or (home(spawner) / COPY).is_symlink():
        return
    archive = Path(os.environ.get("TMPDIR", "/tmp")) / f"dbkit-course-{secrets.token_hex(8)}.tar"
    try:
        with open(os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w") as tar:
                for name in course_files():
                    tar.add(COURSE / name, arcname=name, recursive=False)
        # unpacked by the learner's own process, into a new folder, then renamed: an
        # interrupted copy is never mistaken for a finished one
        staging = f".{COPY}-copying-{secrets.token_hex(4)}"
        script = 'mkdir "$1" && tar -x --no-same-owner -C "$1" && mv -T "$1" "$2"'
        with open(archive, "rb") as stdin:
            done = run_as(spawner, ["sh", "-c", script, "sh", staging, COPY], stdin=stdin)
        if done.returncode != 0:
            raise RuntimeError(f"copying the course for {spawner.user.name}: {done.stderr!r}")
    finally:
        archive.unlink(missing_ok=True)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def learner_role(spawner) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Shared server: the learner's own role (made on first start, a new password at
    every start) and their own database; returns the DB_* variables for their server."""
    import asyncpg

    name = spawner.user.name
    password = secrets.token_urlsafe(24)  # letters, digits, - and _: safe in a literal
    admin = await asyncpg.connect(SHARED_URL, timeout=10)
    try:
        note = await admin.fetchrow(
            "SELECT shobj_description(oid, 'pg_authid') AS note FROM pg_roles WHERE rolname=$1",
            name,
        )
        if note is None:
            await admin.execute(f"CREATE ROLE {quote_ident(name)} LOGIN CREATEDB")
            await admin.execute(f"COMMENT ON ROLE {quote_ident(name)} IS '{ROLE_MARK}'")
        elif note["note"] != ROLE_MARK:
            raise RuntimeError(f"the database role {name!r} exists and is not a learner's")
        await admin.execute(f"ALTER ROLE {quote_ident(name)} PASSWORD '{password}'")
    finally:
        await admin.close()
    server = urlsplit(SHARED_URL)
    env = {
        "DB_HOST": unquote(server.hostname or "localhost"),
        "DB_PORT": str(server.port or 5432),
        "DB_USER": name,
        "DB_PASS": password,
        "DB_NAME": name,
    }
    # their own database, made by their role (so it is theirs), closed to everyone else
    mine = await asyncpg.connect(
        host=env["DB_HOST"], port=int(env["DB_PORT"]), user=name, password=password,
        database="postgres", timeout=10,
    )  # fmt: skip
    try:
        if not await mine.fetchval("SELECT 1 FROM pg_database WHERE datname=$1", name):
            await mine.execute(f"CREATE DATABASE {quote_ident(name)}")
            await mine.execute(f"REVOKE CONNECT ON DATABASE {quote_ident(name)} FROM PUBLIC")
    finally:
        await mine.close()
    return env


async def pre_spawn(spawner) -> None:  # type: ignore[no-untyped-def]
    await asyncio.to_thread(copy_course, spawner)
    if DATABASE == "shared":
        # a new dict: the configured one is shared by every learner's spawner
        spawner.environment = {**spawner.environment, **await learner_role(spawner)}


async def post_stop(spawner) -> None:  # type: ignore[no-untyped-def]
    """Embedded mode: the learner's PostgreSQL stops with their server (idle culling
    frees its memory too); their data stays in ~/course/.dbkit for next time."""
    if DATABASE != "embedded" or not (home(spawner) / COPY / ".dbkit" / "pgdata").exists():
        return
    copy = home(spawner) / COPY
    argv = [str(ENV / "bin" / "python"), "-m", "dbkit", "stop"]
    done = await asyncio.to_thread(run_as, spawner, argv, cwd=copy, env={"PYTHONPATH": str(copy)})
    if done.returncode != 0:
        spawner.log.warning("dbkit stop for %s: %r", spawner.user.name, done.stdout + done.stderr)


c.Spawner.pre_spawn_hook = pre_spawn
c.Spawner.post_stop_hook = post_stop

# --- idle culling: a learner who left stops using memory -------------------------------
idle = int(os.environ.get("DBKIT_HUB_IDLE_MINUTES", "60")) * 60
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={idle}"],
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]
