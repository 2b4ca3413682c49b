"""Small helpers shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dbkit.settings import PROJECT_ROOT

DB_VARIABLES = ("DATABASE_URL", "DB_USER", "DB_PASS", "DB_HOST", "DB_PORT", "DB_NAME")


def run_dbkit(
    *args: str, env: dict[str, str] | None = None, code: str | None = None, cwd: Path = PROJECT_ROOT
) -> subprocess.CompletedProcess[str]:
    """`python -m dbkit <args>` (or `python -c <code>`) with the DB variables replaced by
    `env`, so a test decides exactly which database the subprocess sees."""
    base = {k: v for k, v in os.environ.items() if k not in DB_VARIABLES}
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "dbkit", *args]
    return subprocess.run(
        argv, env={**base, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=120
    )
