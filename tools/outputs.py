"""Re-execute notebooks in place, refresh their learner copies, and check them strictly:
what a contributor runs after changing a notebook (CONTRIBUTING.md).

    python -m tools.outputs 04          # notebooks/04_*.ipynb
    python -m tools.outputs 04 07       # several
    make outputs NB="04 07"             # the same through make

Each notebook runs top to bottom in a fresh kernel, in the notebooks/ folder, as nbval
runs it, with DBKIT_NAMESPACE=you so that the stored outputs name databases as a learner
reads them (`dbkit_you_nb04`; tests/sanitize.cfg compares any namespace alike). A cell that
fails stops it, and nothing is written. Then the Korean edition takes the new code cells
(`python -m tools.translation sync`), `make student`, and `pytest --nbval` on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tools.course import find

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def execute(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    os.environ["DBKIT_NAMESPACE"] = "you"  # the kernel inherits it
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        record_timing=False,  # no timestamps in the committed file
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        raise SystemExit(f"{path.name}: a cell failed, nothing written:\n{exc}") from None
    nbformat.write(nb, path)
    print(f"executed {path.relative_to(ROOT)}")


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit("which notebooks? e.g. `make outputs NB=04`")
    paths = [find(n) for n in argv]
    for path in paths:
        execute(path)
    # the Korean edition takes the new code cells and outputs; then both learner copies
    subprocess.run([sys.executable, "-m", "tools.translation", "sync"], cwd=ROOT, check=True)
    subprocess.run([sys.executable, "-m", "tools.student"], cwd=ROOT, check=True)
    env = {k: v for k, v in os.environ.items() if k != "DBKIT_NAMESPACE"}
    check = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    return subprocess.run([*check, *map(str, paths)], cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
