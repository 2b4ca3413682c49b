"""`make site`: the course as a static site, built from the committed, executed notebooks.

Stages the sources in build/site-src/ (the README as the home page, INSTRUCTORS.md,
CONTRIBUTING.md, bench/README.md and the solved notebooks, each with a "Run it" box that
gives its minutes from INSTRUCTORS.md and the three ways to run it), then runs Sphinx
(site/conf.py) into build/site/ with warnings as errors, so a broken internal link fails
the build. Nothing is re-executed and nothing is downloaded.

    python -m tools.site            # build; prints the path of the home page
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from tools.course import entries

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "build" / "site-src"
OUT = ROOT / "build" / "site"
# where the course is published: set COURSE_REPO when you build the site for your copy
REPO = os.environ.get("COURSE_REPO", "https://github.com/OWNER/REPO")
BINDER = f"https://mybinder.org/v2/gh/{REPO.removeprefix('https://github.com/')}/HEAD"


def schedule() -> dict[str, tuple[int, int]]:
    """Notebook number -> (teaching, exercise) minutes, from INSTRUCTORS.md."""
    text = (ROOT / "INSTRUCTORS.md").read_text()
    rows = re.findall(r"^\| (\d\d) \| [^|]+ \| (\d+) \| (\d+) \|", text, re.M)
    return {number: (int(teach), int(exercise)) for number, teach, exercise in rows}


def run_it(path: Path, minutes: tuple[int, int]) -> str:
    nb = f"notebooks/{path.name}"
    pull = (
        "https://YOUR-HUB/hub/user-redirect/git-pull?"
        f"repo={REPO}&urlpath=lab/tree/{REPO.rsplit('/', 1)[1]}/{nb}"
    )
    return f""":::{{admonition}} Run it · {minutes[0]} min teaching + {minutes[1]} min exercise
:class: tip

* **On your machine**: `git clone {REPO}`, then `make lab` and open `{nb}`
  (your own copy, with the exercise to do: `notebooks/student/{path.name}`).
* **On Binder**: [launch this notebook]({BINDER}?urlpath=lab/tree/{nb}) (no install; the
  embedded PostgreSQL starts inside it).
* **On your workshop's JupyterHub**: open the link your instructor gives you, or
  `{pull}` with `YOUR-HUB` replaced by the hub's address (nbgitpuller).
:::
"""


def stage() -> list[str]:
    """Copy the sources into build/site-src; return the notebook documents, in order."""
    shutil.rmtree(SRC, ignore_errors=True)
    (SRC / "notebooks").mkdir(parents=True)
    (SRC / "bench").mkdir()
    minutes = schedule()
    docs = []
    for entry in entries():
        nb = nbformat.read(entry.path, as_version=4)
        box = nbformat.v4.new_markdown_cell(run_it(entry.path, minutes[entry.number]))
        box.id = "run-it"
        nb.cells.insert(1, box)
        nbformat.write(nb, SRC / "notebooks" / entry.path.name)
        docs.append(f"notebooks/{entry.path.stem}")
    for name in ("INSTRUCTORS.md", "CONTRIBUTING.md", "bench/README.md"):
        shutil.copy(ROOT / name, SRC / name)
    readme = (ROOT / "README.md").read_text()
    toc = "\n".join(
        [
            "",
            "```{toctree}",
            ":hidden:",
            ":caption: The notebooks",
            "",
            *docs,
            "```",
            "",
            "```{toctree}",
            ":hidden:",
            ":caption: For instructors and contributors",
            "",
            "INSTRUCTORS",
            "CONTRIBUTING",
            "bench/README",
            "```",
            "",
        ]
    )
    (SRC / "index.md").write_text(readme + toc)
    shutil.copy(ROOT / "site" / "conf.py", SRC / "conf.py")
    return docs


def build() -> Path:
    stage()
    shutil.rmtree(OUT, ignore_errors=True)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-n"),
            *("-d", str(ROOT / "build" / "site-doctrees"), str(SRC), str(OUT)),
        ],
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit("the site did not build: see the warnings above")
    return OUT / "index.html"


if __name__ == "__main__":
    print(f"built {build().relative_to(ROOT)}")
