"""Binder builds this repository with repo2docker, from environment.yml. repo2docker reads
the Python version only from a `python=X.Y` line (`python>=3.11` is silently taken as
"unspecified", and it builds its default, 3.10, on which the course does not install).

`repo2docker --no-build --debug` prints the Dockerfile it would build, without Docker.
Binder's user is jovyan, uid 1000; without --user-id repo2docker takes ours (root here).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from dbkit.settings import PROJECT_ROOT


def _decoded(text: str) -> str:
    """repo2docker names copied build files with escapism: '-2e' for '.', '-2d' for '-'."""
    return re.sub(r"-([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


def test_repo2docker_builds_the_python_the_course_needs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    argv = [sys.executable, "-m", "repo2docker", "--no-build", "--debug"]
    argv += ["--user-id", "1000", "--user-name", "jovyan", str(PROJECT_ROOT)]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    dockerfile, log = done.stdout, done.stderr

    assert "Python version unspecified" not in log, log
    found = re.search(r"Building conda environment for python=(\d+)\.(\d+)", log)
    assert found, log
    built = tuple(int(n) for n in found.groups())
    required = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    minimum = tuple(int(n) for n in required["requires-python"].removeprefix(">=").split("."))
    assert built >= minimum, f"Binder would build Python {built}, the course needs {minimum}"

    # the base environment is the frozen one for that Python, updated from our file
    lock = f"environment.py-{built[0]}.{built[1]}-linux-64.lock"
    assert lock in _decoded(dockerfile), dockerfile
    assert '--file "environment.yml"' in dockerfile
    # the repository belongs to the notebook user: the embedded PostgreSQL keeps its data
    # in <project>/.dbkit, and `pip install -e .` writes there too
    assert "COPY --chown=1000:1000 src/ ${REPO_DIR}/" in dockerfile
    # and the notebook server runs as that user, not as root
    assert re.findall(r"^USER (.+)$", dockerfile, re.MULTILINE)[-1] == "${NB_USER}"
