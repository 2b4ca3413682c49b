"""`python -m dbkit url | doctor | start | stop | reset [--yes] | lab`.

The Makefile wraps these: `make url`, `make doctor`, `make stop`, `make reset`, `make lab`.
Every problem is printed as one line with its cause and fix; no tracebacks.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from dbkit import doctor, server
from dbkit.database import target
from dbkit.errors import SetupError
from dbkit.settings import PROJECT_ROOT
from dbkit.urls import shown


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


def cmd_doctor(args: argparse.Namespace) -> int:
    return doctor.run()


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
