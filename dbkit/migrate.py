"""Run the project's Alembic migrations from Python, safely. Explained in
notebooks/01_alembic_init.ipynb.

Inside Jupyter an event loop is already running, and the async env.py calls
`asyncio.run()`, which refuses to run there. Two ways around it, both here:

* `upgrade()` / `downgrade()` run the Alembic command in a worker thread, which has no
  event loop of its own;
* `alembic()` runs the real command line in a subprocess, as a deploy script would,
  and fails loudly on a non-zero exit (unlike `!alembic ...` in a notebook).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

from dbkit.settings import PROJECT_ROOT


def alembic_config(url: URL, ini: Path = PROJECT_ROOT / "alembic.ini") -> Config:
    """The project's Alembic config, pointed at `url`, for use in-process."""
    cfg = Config(str(ini))
    cfg.attributes["url"] = url  # read by migrations/env.py; never written to a file
    cfg.attributes["configure_logger"] = False  # leave the caller's logging alone
    return cfg


def head(ini: Path = PROJECT_ROOT / "alembic.ini") -> str:
    """The single head revision of the project's migrations."""
    heads = ScriptDirectory.from_config(Config(str(ini))).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"expected one head, found {len(heads)}: {heads}")
    return heads[0]


async def upgrade(url: URL, revision: str = "head") -> None:
    """`alembic upgrade <revision>` on `url`, from inside a running event loop."""
    await asyncio.to_thread(command.upgrade, alembic_config(url), revision)


async def downgrade(url: URL, revision: str) -> None:
    """`alembic downgrade <revision>` on `url`, from inside a running event loop."""
    await asyncio.to_thread(command.downgrade, alembic_config(url), revision)


def alembic(*args: str, url: URL | None = None, cwd: Path = PROJECT_ROOT) -> str:
    """Run `python -m alembic <args>` in `cwd` and return what it printed.

    `url` is handed to the subprocess as DATABASE_URL (in its environment, not on the
    command line). A non-zero exit raises CalledProcessError with the output attached."""
    env = dict(os.environ)
    if url is not None:
        env["DATABASE_URL"] = url.render_as_string(hide_password=False)
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    output = (result.stdout + result.stderr).replace("\r\n", "\n")
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, ["alembic", *args], output)
    return output
